//! Addresses as RFC 3261 §20/§25 writes them: generated Contacts (display names quoted with escapes
//! or as tokens, bracketed or bare URIs, header parameters whose quoted values hold `<`, `>`, `;`,
//! `,` and `"`, LWS wherever the grammar allows it), rendered, listed and parsed back.

use proptest::prelude::*;
use sip::addr::{quote, NameAddr, SipUri};
use sip::message::{addr_uri, param, split_list, Headers};

#[derive(Debug, Clone)]
enum Display {
    Tokens(Vec<String>),
    Quoted(String),
}

#[derive(Debug, Clone)]
enum Value {
    Token(String),
    Quoted(String),
    V6(String),
}

#[derive(Debug, Clone)]
struct Contact {
    display: Option<Display>,
    uri: String,
    bracketed: bool,
    params: Vec<(String, Option<Value>)>,
    /// LWS put around `;`, `=` and between the display name and `<`.
    lws: Vec<&'static str>,
}

const LWS: [&str; 4] = ["", " ", "  ", "\t"];

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.!%*_+`'~-]{1,12}"
}

/// What a quoted string may carry: the characters that confuse naive parsers, letters, and UTF-8.
fn quoted_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\\'),
            Just('<'),
            Just('>'),
            Just(';'),
            Just(','),
            Just('='),
            Just(' '),
            Just(':'),
            Just('日'),
            prop::char::range('a', 'z'),
        ],
        0..24,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn uri() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,8}){0,2}",
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        Just("[::1]".to_string()),
        Just("[2001:db8::7]".to_string()),
    ];
    (
        prop_oneof![Just("sip"), Just("sips"), Just("SIP")],
        prop::option::of("[A-Za-z0-9_.!~*'()-]{1,10}(%[0-9A-F]{2})?"),
        host,
        prop::option::of(1024u16..65535),
        prop::collection::vec(("[a-z]{1,8}", prop::option::of("[a-z0-9]{1,6}")), 0..3),
    )
        .prop_map(|(scheme, user, host, port, params)| {
            let mut s = format!("{scheme}:");
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (k, v) in params {
                s.push(';');
                s.push_str(&k);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

fn contact() -> impl Strategy<Value = Contact> {
    let display = prop::option::of(prop_oneof![
        prop::collection::vec(token(), 1..4).prop_map(Display::Tokens),
        quoted_text().prop_map(Display::Quoted),
    ]);
    let value = prop::option::of(prop_oneof![
        token().prop_map(Value::Token),
        quoted_text().prop_map(Value::Quoted),
        Just(Value::V6("[fe80::1]".into())),
    ]);
    let params = prop::collection::vec((token(), value), 0..5);
    (display, uri(), any::<bool>(), params, prop::collection::vec(prop::sample::select(&LWS[..]), 16)).prop_map(
        |(display, uri, bracket, params, lws)| {
            // A display name, or a URI with parameters, needs the angle brackets (RFC 3261 §20).
            let bracketed = bracket || display.is_some() || uri.contains(';');
            Contact { display, uri, bracketed, params, lws }
        },
    )
}

impl Contact {
    fn render(&self) -> String {
        let mut l = self.lws.iter().cycle();
        let mut s = String::from(*l.next().unwrap_or(&""));
        match &self.display {
            Some(Display::Tokens(t)) => {
                s.push_str(&t.join(" "));
                s.push(' ');
            }
            Some(Display::Quoted(q)) => {
                s.push_str(&quote(q));
                s.push_str(l.next().unwrap_or(&""));
            }
            None => {}
        }
        if self.bracketed {
            s.push('<');
            s.push_str(&self.uri);
            s.push('>');
        } else {
            s.push_str(&self.uri);
        }
        for (k, v) in &self.params {
            s.push_str(l.next().unwrap_or(&""));
            s.push(';');
            s.push_str(l.next().unwrap_or(&""));
            s.push_str(k);
            if let Some(v) = v {
                s.push_str(l.next().unwrap_or(&""));
                s.push('=');
                s.push_str(l.next().unwrap_or(&""));
                match v {
                    Value::Token(t) | Value::V6(t) => s.push_str(t),
                    Value::Quoted(q) => s.push_str(&quote(q)),
                }
            }
        }
        s.push_str(l.next().unwrap_or(&""));
        s
    }

    fn check(&self, text: &str) -> Result<(), TestCaseError> {
        let a = NameAddr::parse(text).map_err(|e| TestCaseError::fail(format!("{e}: {text:?}")))?;
        prop_assert_eq!(a.uri, self.uri.as_str(), "{:?}", text);
        prop_assert_eq!(a.bracketed, self.bracketed);
        let want_display = match &self.display {
            Some(Display::Tokens(t)) => Some(t.join(" ")),
            Some(Display::Quoted(q)) => Some(q.clone()),
            None => None,
        };
        prop_assert_eq!(a.display().map(|d| d.into_owned()), want_display, "{:?}", text);
        let got: Vec<(String, Option<String>)> =
            a.params().map(|p| (p.name.to_string(), p.value.map(|_| p.value().into_owned()))).collect();
        let want: Vec<(String, Option<String>)> = self
            .params
            .iter()
            .map(|(k, v)| {
                let v = v.as_ref().map(|v| match v {
                    Value::Token(t) | Value::V6(t) | Value::Quoted(t) => t.clone(),
                });
                (k.clone(), v)
            })
            .collect();
        prop_assert_eq!(&got, &want, "{:?}", text);
        // The message module's helpers read the same.
        prop_assert_eq!(addr_uri(text), self.uri.as_str());
        if let Some((k, _)) = self.params.first() {
            let first = a.param(k).map(|p| p.raw_value());
            prop_assert_eq!(param(text, k), first);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn generated_contacts_read_back(c in contact()) {
        let text = c.render();
        c.check(&text)?;
    }

    #[test]
    fn a_contact_list_splits_where_rfc_3261_puts_commas(cs in prop::collection::vec(contact(), 1..5)) {
        // In a list, a bare URI may not carry parameters of its own and commas separate elements.
        let texts: Vec<String> = cs.iter().map(Contact::render).collect();
        let mut h = Headers::new();
        h.push("Contact", texts.join(","));
        let parts = h.get_list("Contact");
        prop_assert_eq!(parts.len(), cs.len(), "{:?}", texts);
        for (c, part) in cs.iter().zip(parts) {
            c.check(part)?;
        }
        // One header field per contact reads the same.
        let mut h2 = Headers::new();
        for t in &texts {
            h2.push("Contact", t.clone());
        }
        prop_assert_eq!(h2.get_list("Contact").len(), cs.len());
    }

    #[test]
    fn any_text_parses_or_fails_without_panicking(s in "\\PC{0,80}") {
        let _ = NameAddr::parse(&s);
        let _ = split_list(&s);
        let _ = SipUri::parse(&s);
        let _ = param(&s, "tag");
    }

    #[test]
    fn aor_keeps_the_user_and_lowercases_the_host(user in "[A-Za-z0-9]{1,8}", host in "[A-Za-z]{1,8}\\.[A-Za-z]{2,4}") {
        let uri = format!("SIP:{user}@{host};transport=udp");
        let u = SipUri::parse(&uri).expect("a SIP URI");
        prop_assert_eq!(u.aor(), format!("sip:{user}@{}", host.to_ascii_lowercase()));
    }
}

#[test]
fn the_contact_baresip_sends() {
    let v = r#"<sip:agent0-0x563d06d63eb0@127.0.0.1:5391>;expires=60;+sip.instance="<urn:uuid:e1cfc9a2-567a-d2f3-ca75-7a01555a513f>";reg-id=1"#;
    let a = NameAddr::parse(v).expect("parses");
    assert_eq!(a.uri, "sip:agent0-0x563d06d63eb0@127.0.0.1:5391");
    assert_eq!(param(v, "expires"), Some("60"));
    assert_eq!(param(v, "+sip.instance"), Some("<urn:uuid:e1cfc9a2-567a-d2f3-ca75-7a01555a513f>"));
    let mut h = Headers::new();
    h.push("Contact", v);
    assert_eq!(h.get_list("Contact"), vec![v]);
}
