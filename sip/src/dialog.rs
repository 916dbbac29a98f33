//! Dialogs (RFC 3261 12; Kamailio's `dialog`): the state shared by the two ends of a call, built from
//! the INVITE and its responses. A dialog builds its in-dialog requests (ACK for 2xx, BYE, OPTIONS,
//! re-INVITE) and checks the ones it receives; it never sends: the transaction [`Endpoint`] does.
//!
//! [`Endpoint`]: crate::transaction::Endpoint

use std::fmt::Write as _;

use crate::message::{addr_uri, param, response_to, CSeq, Method, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
}

/// Call-ID plus both tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub id: DialogId,
    pub role: Role,
    pub state: DialogState,
    /// Our From (UAC) or To (UAS) value with our tag.
    pub local: String,
    /// Their address with their tag.
    pub remote: String,
    /// Their Contact URI: the Request-URI of in-dialog requests.
    pub remote_target: String,
    /// Record-Route URIs in the order our requests traverse them (loose routing).
    pub route_set: Vec<String>,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    pub local_contact: String,
    /// CSeq number of the INVITE that made or last refreshed the dialog.
    pub invite_seq: u32,
}

/// What the caller puts in a new INVITE.
#[derive(Debug, Clone)]
pub struct InviteParams {
    pub request_uri: String,
    /// `sip:0312345678@carrier` or with a display name: `"184" <sip:...>`.
    pub from: String,
    pub to: String,
    pub contact: String,
    pub call_id: String,
    pub from_tag: String,
    /// SDP offer, `None` for an offerless INVITE.
    pub sdp: Option<Vec<u8>>,
}

/// A new out-of-dialog INVITE (CSeq 1); the endpoint adds Via and Max-Forwards.
pub fn invite(p: &InviteParams) -> Request {
    let mut r = Request::new(Method::Invite, p.request_uri.clone());
    r.headers.push("From", format!("{};tag={}", name_addr(&p.from), p.from_tag));
    r.headers.push("To", name_addr(&p.to));
    r.headers.push("Call-ID", p.call_id.clone());
    r.headers.push("CSeq", "1 INVITE");
    r.headers.push("Contact", name_addr(&p.contact));
    r.headers.push("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO");
    if let Some(sdp) = &p.sdp {
        r.headers.push("Content-Type", "application/sdp");
        r.body = sdp.clone();
    }
    r
}

fn name_addr(v: &str) -> String {
    if v.contains('<') {
        v.to_string()
    } else {
        format!("<{v}>")
    }
}

impl Dialog {
    /// The UAC side, from our INVITE and a 1xx (with a To tag: early) or a 2xx (confirmed).
    pub fn uac(invite: &Request, response: &Response) -> Option<Dialog> {
        if response.status <= 100 || response.status >= 300 {
            return None;
        }
        let remote_tag = response.to_tag()?.to_string();
        let local_tag = invite.from_tag()?.to_string();
        let mut route_set: Vec<String> =
            response.headers.get_list("Record-Route").into_iter().map(|r| addr_uri(r).to_string()).collect();
        route_set.reverse();
        let remote_target = response
            .headers
            .get_list("Contact")
            .first()
            .map(|c| addr_uri(c).to_string())
            .unwrap_or_else(|| invite.uri.clone());
        Some(Dialog {
            id: DialogId { call_id: invite.call_id()?.to_string(), local_tag, remote_tag },
            role: Role::Uac,
            state: if response.is_success() { DialogState::Confirmed } else { DialogState::Early },
            local: invite.headers.get("From")?.to_string(),
            remote: response.headers.get("To")?.to_string(),
            remote_target,
            route_set,
            local_seq: invite.cseq()?.seq,
            remote_seq: None,
            local_contact: invite.headers.get("Contact").unwrap_or("").to_string(),
            invite_seq: invite.cseq()?.seq,
        })
    }

    /// The UAS side, from a received INVITE; `local_tag` goes in our To.
    pub fn uas(invite: &Request, local_tag: &str, local_contact: &str) -> Option<Dialog> {
        let route_set: Vec<String> =
            invite.headers.get_list("Record-Route").into_iter().map(|r| addr_uri(r).to_string()).collect();
        let remote_target = addr_uri(invite.headers.get_list("Contact").first()?).to_string();
        let mut local = invite.headers.get("To")?.to_string();
        let _ = write!(local, ";tag={local_tag}");
        Some(Dialog {
            id: DialogId {
                call_id: invite.call_id()?.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: invite.from_tag()?.to_string(),
            },
            role: Role::Uas,
            state: DialogState::Early,
            local,
            remote: invite.headers.get("From")?.to_string(),
            remote_target,
            route_set,
            local_seq: 0,
            remote_seq: Some(invite.cseq()?.seq),
            local_contact: name_addr(local_contact),
            invite_seq: invite.cseq()?.seq,
        })
    }

    /// Whether a message with these Call-ID and tags belongs to this dialog.
    pub fn matches_request(&self, req: &Request) -> bool {
        req.call_id() == Some(self.id.call_id.as_str())
            && req.to_tag() == Some(self.id.local_tag.as_str())
            && req.from_tag() == Some(self.id.remote_tag.as_str())
    }

    pub fn matches_response(&self, resp: &Response) -> bool {
        resp.call_id() == Some(self.id.call_id.as_str()) && resp.to_tag() == Some(self.id.remote_tag.as_str())
    }

    /// A response to the INVITE (UAS) moves the dialog: 2xx confirms, >= 300 terminates.
    pub fn on_invite_response_sent(&mut self, status: u16) {
        if (200..300).contains(&status) {
            self.state = DialogState::Confirmed;
        } else if status >= 300 && self.state == DialogState::Early {
            self.state = DialogState::Terminated;
        }
    }

    /// A response on the UAC side: 2xx confirms (and refreshes the target), a final failure of the
    /// INVITE terminates an early dialog.
    pub fn on_response(&mut self, resp: &Response) {
        let Some(cseq) = resp.cseq() else { return };
        if cseq.method == Method::Invite {
            if resp.is_success() {
                self.state = DialogState::Confirmed;
                if let Some(c) = resp.headers.get_list("Contact").first() {
                    self.remote_target = addr_uri(c).to_string();
                }
            } else if resp.status >= 300 && self.state == DialogState::Early {
                self.state = DialogState::Terminated;
            }
        } else if cseq.method == Method::Bye && resp.status >= 200 {
            self.state = DialogState::Terminated;
        }
        if resp.status == 481 || resp.status == 408 {
            self.state = DialogState::Terminated;
        }
    }

    /// The ACK for a 2xx to our INVITE (RFC 3261 13.2.2.4): CSeq number of the INVITE, method ACK.
    pub fn ack(&self, invite_seq: u32, sdp: Option<Vec<u8>>) -> Request {
        let mut r = self.base_request(Method::Ack, invite_seq);
        if let Some(b) = sdp {
            r.headers.push("Content-Type", "application/sdp");
            r.body = b;
        }
        r
    }

    /// A new in-dialog request (BYE, OPTIONS, INFO, re-INVITE) with the next CSeq.
    pub fn request(&mut self, method: Method) -> Request {
        self.local_seq = self.local_seq.saturating_add(1).min((1 << 31) - 1);
        if method == Method::Invite {
            self.invite_seq = self.local_seq;
        }
        if method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        self.base_request(method, self.local_seq)
    }

    fn base_request(&self, method: Method, seq: u32) -> Request {
        let mut r = Request::new(method.clone(), self.remote_target.clone());
        r.headers.push("From", self.local.clone());
        r.headers.push("To", self.remote.clone());
        r.headers.push("Call-ID", self.id.call_id.clone());
        r.headers.push("CSeq", CSeq { seq, method: method.clone() }.to_string());
        for route in &self.route_set {
            r.headers.push("Route", format!("<{route}>"));
        }
        if matches!(method, Method::Invite) && !self.local_contact.is_empty() {
            r.headers.push("Contact", self.local_contact.clone());
        }
        r
    }

    /// The next hop's URI: the first route (loose routing) or the remote target. The driver resolves it.
    pub fn next_hop(&self) -> &str {
        self.route_set.first().map(String::as_str).unwrap_or(&self.remote_target)
    }

    /// Checks a received in-dialog request and answers it minimally. Returns the response to send; for
    /// ACK, `None`. BYE terminates; re-INVITE is answered 200 with `sdp` (our current answer); a CSeq
    /// lower than the last one gets 500 (RFC 3261 12.2.2).
    pub fn handle_request(&mut self, req: &Request, sdp: Option<&[u8]>) -> Option<Response> {
        let cseq = req.cseq()?;
        if req.method == Method::Ack {
            return None;
        }
        if let Some(last) = self.remote_seq {
            if cseq.seq < last || (cseq.seq == last && req.method != Method::Cancel) {
                return Some(self.respond(req, 500));
            }
        }
        self.remote_seq = Some(cseq.seq);
        match req.method {
            Method::Bye => {
                self.state = DialogState::Terminated;
                Some(self.respond(req, 200))
            }
            Method::Invite => {
                if let Some(c) = req.headers.get_list("Contact").first() {
                    self.remote_target = addr_uri(c).to_string();
                }
                let mut r = self.respond(req, 200);
                r.headers.push("Contact", self.local_contact.clone());
                if let Some(b) = sdp {
                    r.headers.push("Content-Type", "application/sdp");
                    r.body = b.to_vec();
                }
                Some(r)
            }
            Method::Options | Method::Info => Some(self.respond(req, 200)),
            _ => Some(self.respond(req, 405)),
        }
    }

    /// A response to `req` carrying our tag.
    pub fn respond(&self, req: &Request, status: u16) -> Response {
        let mut r = response_to(req, status, Some(&self.id.local_tag));
        if self.role == Role::Uas && (200..300).contains(&status) && req.method == Method::Invite {
            for rr in req.headers.get_list("Record-Route") {
                r.headers.push("Record-Route", rr);
            }
        }
        r
    }
}

/// Whether a request is inside a dialog (has a To tag).
pub fn is_in_dialog(req: &Request) -> bool {
    req.headers.get("To").and_then(|t| param(t, "tag")).is_some_and(|t| !t.is_empty())
}

/// An out-of-dialog request (OPTIONS keep-alive towards a carrier, REGISTER, ...) with CSeq `seq`; the
/// endpoint adds Via and Max-Forwards.
pub fn out_of_dialog(
    method: Method,
    uri: &str,
    from: &str,
    from_tag: &str,
    to: &str,
    call_id: &str,
    seq: u32,
) -> Request {
    let mut r = Request::new(method.clone(), uri);
    r.headers.push("From", format!("{};tag={from_tag}", name_addr(from)));
    r.headers.push("To", name_addr(to));
    r.headers.push("Call-ID", call_id);
    r.headers.push("CSeq", CSeq { seq, method }.to_string());
    r
}
