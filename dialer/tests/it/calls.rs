//! The shard's call control under virtual time against a scripted carrier and phone.

use std::time::Duration;

use dialer::calls::{
    agent_media_call, customer_media_call, Account, CallEnd, CallEvent, CancelReason, Command, DialAgent, DialCustomer,
    DigestChallenges, DtmfEntry, EndCause, Party,
};
use media::shard::{Control, Report};
use media::{DtmfKind, Role};
use sip::auth::{ha1, Algorithm, Credentials, NonceSigner};
use sip::message::{Method, Request};

use crate::net::{addr, keys, Net, Script, CARRIER, PHONE, SHARD};

pub(crate) fn dial(call: u64, tel: &str) -> Command {
    Command::DialCustomer(Box::new(DialCustomer {
        call,
        tenant_id: 1,
        tel: tel.to_string(),
        caller_id: Some("0312345678".into()),
        ring_timeout: Duration::from_secs(20),
        wait_limit: Duration::from_secs(2),
        waiting_audio: None,
        abandon_message: Some(media::player::beep(440.0, 500, 4000)),
        recording: Some(format!("/tmp/rec-{call}.wav").into()),
        dtmf_result_entry: true,
    }))
}

pub(crate) fn ended(events: &[CallEvent], call: u64) -> Vec<CallEnd> {
    events
        .iter()
        .filter_map(|e| match e {
            CallEvent::CustomerEnded { call: c, end } if *c == call => Some(end.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn agent_up(net: &mut Net, agent: u64) {
    net.command(Command::DialAgent(DialAgent {
        agent,
        tenant_id: 1,
        target: format!("sip:agent{agent}@{PHONE}"),
        dest: addr(PHONE),
    }));
    net.run_for(Duration::from_secs(1));
    assert!(net.take_events().contains(&CallEvent::AgentLegUp { agent }), "the phone answered the nailed-up leg");
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::AddCall { call, .. } if *call == agent_media_call(agent))));
    assert!(m.iter().any(|c| matches!(c, Control::SetAgent { call, .. } if *call == agent_media_call(agent))));
}

#[test]
fn answered_bridged_and_hung_up_by_the_customer() {
    let mut net = Net::new(Script::Answer { after: Duration::from_secs(3) });
    agent_up(&mut net, 7);
    net.command(dial(1, "0311112222"));
    let invite = net.carrier.invites[0].clone();
    assert_eq!(invite.uri, format!("sip:0311112222@{}", addr(CARRIER).ip()));
    assert!(invite.headers.get("From").is_some_and(|f| f.contains("0312345678")), "caller ID in From");
    net.run_for(Duration::from_secs(4));
    let ev = net.take_events();
    assert!(ev.contains(&CallEvent::CustomerRinging { call: 1 }));
    let ring_ms = ev
        .iter()
        .find_map(|e| match e {
            CallEvent::CustomerAnswered { call: 1, ring_ms } => Some(*ring_ms),
            _ => None,
        })
        .expect("answered");
    assert!((3_000..3_100).contains(&ring_ms), "ring time measured: {ring_ms}");
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::SetCustomer { call, .. } if *call == customer_media_call(1))));
    // The carrier got our ACK: its dialog is confirmed.
    assert_eq!(net.carrier.dialogs.len(), 1);

    net.command(Command::Bridge { call: 1, agent: 7 });
    assert!(net.take_events().contains(&CallEvent::Bridged { call: 1, agent: 7 }));
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::MoveCustomer { from, to }
        if *from == customer_media_call(1) && *to == agent_media_call(7))));
    assert!(m.iter().any(|c| matches!(c, Control::StartRecording { call, .. } if *call == agent_media_call(7))));

    net.run_for(Duration::from_secs(60));
    let call_id = net.carrier.dialogs.keys().next().expect("dialog").clone();
    let now = net.now;
    net.carrier.bye(now, &call_id, addr(SHARD));
    net.run_for(Duration::from_millis(100));
    let ev = net.take_events();
    let ends = ended(&ev, 1);
    assert_eq!(ends.len(), 1, "exactly one end: {ev:?}");
    let e = &ends[0];
    assert_eq!(
        (e.status, e.cause, e.ended_by, e.answered, e.agent),
        (200, EndCause::Completed, Party::Customer, true, Some(7))
    );
    assert!((60_000..60_200).contains(&e.talk_ms), "talk time: {}", e.talk_ms);
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::StopRecording { call } if *call == agent_media_call(7))));
    assert!(m.iter().any(|c| matches!(c, Control::TakeCustomer { call } if *call == agent_media_call(7))));
    assert!(m.iter().any(|c| matches!(c, Control::EndCall { call } if *call == customer_media_call(1))));
    assert_eq!(net.cc.customer_calls(), 0);
    assert_eq!(net.cc.agent_legs(), 1, "the agent's leg stays up");
}

#[test]
fn busy_decline_not_found_and_server_error_end_with_their_status() {
    let mut net = Net::new(Script::Answer { after: Duration::from_secs(1) });
    for (tel, status) in [("0300000486", 486u16), ("0300000603", 603), ("0300000404", 404), ("0300000503", 503)] {
        net.carrier.answers.insert(tel.to_string(), Script::Reject { status, after: Duration::from_millis(800) });
    }
    let free = net.cc.free_ports();
    for (i, tel) in ["0300000486", "0300000603", "0300000404", "0300000503"].iter().enumerate() {
        net.command(dial(10 + i as u64, tel));
    }
    net.run_for(Duration::from_secs(2));
    let ev = net.take_events();
    for (i, status) in [486u16, 603, 404, 503].iter().enumerate() {
        let e = ended(&ev, 10 + i as u64);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].status, e[0].cause, e[0].answered), (*status, EndCause::Rejected, false));
        assert!(e[0].ring_ms >= 800);
    }
    assert_eq!(net.cc.free_ports(), free, "every RTP port came back");
    assert_eq!(net.cc.customer_calls(), 0);
}

#[test]
fn ring_timeout_cancels_and_ends_as_timeout() {
    let mut net = Net::new(Script::Ring);
    net.command(dial(3, "0399999999"));
    net.run_for(Duration::from_secs(19));
    assert!(ended(&net.events, 3).is_empty(), "still ringing before the timeout");
    net.run_for(Duration::from_secs(2));
    let ev = net.take_events();
    let e = ended(&ev, 3);
    assert_eq!(e.len(), 1, "{ev:?}");
    assert_eq!((e[0].status, e[0].cause), (487, EndCause::Cancelled(CancelReason::RingTimeout)));
    assert!((20_000..20_500).contains(&e[0].ring_ms));
    let cancels = net.carrier.events.iter().filter(|e| matches!(e, sip::Event::Cancelled { .. })).count();
    assert_eq!(cancels, 1, "the carrier saw our CANCEL");
}

#[test]
fn no_response_at_all_is_a_transport_failure() {
    let mut net = Net::new(Script::Silent);
    // Silent carrier: its endpoint still answers 100 Trying; drop the carrier entirely instead by
    // sending to an address nobody serves.
    let mut net2 = crate::net::Net::with_config(Script::Silent, |c| c.carrier = addr("127.0.0.9:5060"));
    let Command::DialCustomer(mut d) = dial(4, "0311110000") else { unreachable!("dial builds DialCustomer") };
    d.ring_timeout = Duration::from_secs(60);
    net2.command(Command::DialCustomer(d));
    net2.run_for(Duration::from_secs(40));
    let e = ended(&net2.events, 4);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].status, e[0].cause), (408, EndCause::Transport));
    assert!(net2.stray > 5, "INVITE retransmitted (timer A) before timer B: {}", net2.stray);
    // The silent carrier (100 only) rings until our ring timeout.
    net.command(dial(5, "0311110001"));
    net.run_for(Duration::from_secs(25));
    let e = ended(&net.events, 5);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].cause, EndCause::Cancelled(CancelReason::RingTimeout));
}

#[test]
fn an_answered_customer_no_agent_takes_hears_the_message_and_is_released() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    net.command(dial(6, "0322223333"));
    net.run_for(Duration::from_millis(700));
    assert!(net.take_events().iter().any(|e| matches!(e, CallEvent::CustomerAnswered { call: 6, .. })));
    net.take_media();
    // The wait limit is 2 s: the message starts.
    net.run_for(Duration::from_millis(2_100));
    let m = net.take_media();
    assert!(m
        .iter()
        .any(|c| matches!(c, Control::Play { call, role: Role::Customer, .. } if *call == customer_media_call(6))));
    assert!(ended(&net.events, 6).is_empty(), "released only after the message");
    // The shard reports the prompt's end: BYE.
    let now = net.t();
    net.cc.handle_media(
        now,
        &Report::Event { call: customer_media_call(6), event: media::Event::PromptFinished { role: Role::Customer } },
    );
    net.settle();
    let e = ended(&net.events, 6);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].cause, e[0].answered, e[0].agent, e[0].ended_by),
        (EndCause::Abandoned, true, None, Party::System)
    );
    assert!((2_000..2_200).contains(&e[0].wait_ms), "waited the limit: {}", e[0].wait_ms);
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.carrier.byes, 1, "the carrier got our BYE");
    assert!(net.carrier.dialogs.is_empty());
    assert_eq!(net.cc.stats().abandoned, 1);
}

#[test]
fn the_agent_hangs_up_the_customer_from_the_ui_and_keys_a_result() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    agent_up(&mut net, 9);
    net.command(dial(8, "0344445555"));
    net.run_for(Duration::from_secs(1));
    net.command(Command::Bridge { call: 8, agent: 9 });
    net.run_for(Duration::from_secs(30));
    net.take_events();
    net.command(Command::HangUpCustomer { call: 8, by: Party::Agent });
    net.run_for(Duration::from_millis(200));
    let ev = net.take_events();
    let e = ended(&ev, 8);
    assert_eq!((e.len(), e[0].ended_by, e[0].cause), (1, Party::Agent, EndCause::Completed));
    assert_eq!(net.carrier.byes, 1);
    // The leg stays up; the agent keys "0 30 * 2 #": recall in 30 min + 2 h.
    for k in "030*2#".chars() {
        net.run_for(Duration::from_millis(400));
        let now = net.t();
        let ev = media::Event::Dtmf { role: Role::Agent, digit: k, kind: DtmfKind::Rfc4733 };
        net.cc.handle_media(now, &Report::Event { call: agent_media_call(9), event: ev });
    }
    net.settle();
    let entries: Vec<_> = net.take_events().into_iter().filter(|e| matches!(e, CallEvent::DtmfEntry { .. })).collect();
    assert_eq!(
        entries,
        vec![CallEvent::DtmfEntry {
            agent: 9,
            call: 8,
            entry: DtmfEntry::Recall { after_ms: 30 * 60_000 + 2 * 3_600_000 }
        }]
    );
    // More keys after the entry are not an entry.
    let now = net.t();
    net.cc.handle_media(
        now,
        &Report::Event {
            call: agent_media_call(9),
            event: media::Event::Dtmf { role: Role::Agent, digit: '5', kind: DtmfKind::Rfc4733 },
        },
    );
    net.cc.handle_media(
        now,
        &Report::Event {
            call: agent_media_call(9),
            event: media::Event::Dtmf { role: Role::Agent, digit: '#', kind: DtmfKind::Rfc4733 },
        },
    );
    net.settle();
    assert!(net.take_events().is_empty());
}

#[test]
fn the_phone_hanging_up_ends_its_customer_too() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    agent_up(&mut net, 5);
    net.command(dial(20, "0355556666"));
    net.run_for(Duration::from_secs(1));
    net.command(Command::Bridge { call: 20, agent: 5 });
    net.run_for(Duration::from_secs(5));
    net.take_events();
    let call_id = net.phone.dialogs.keys().next().expect("the phone's dialog").clone();
    let now = net.now;
    net.phone.bye(now, &call_id, addr(SHARD));
    net.run_for(Duration::from_millis(200));
    let ev = net.take_events();
    assert!(ev.contains(&CallEvent::AgentLegDown { agent: 5 }));
    let e = ended(&ev, 20);
    assert_eq!((e.len(), e[0].ended_by), (1, Party::Agent));
    assert_eq!(net.carrier.byes, 1, "the customer got a BYE");
    assert_eq!((net.cc.agent_legs(), net.cc.customer_calls()), (0, 0));
}

#[test]
fn bridges_that_cannot_be_made_are_refused_and_change_nothing() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    net.command(Command::Bridge { call: 99, agent: 1 });
    assert!(matches!(net.take_events()[..], [CallEvent::BridgeFailed { call: 99, agent: 1, .. }]));
    net.command(dial(30, "0366667777"));
    net.run_for(Duration::from_secs(1));
    net.take_events();
    net.command(Command::Bridge { call: 30, agent: 1 });
    assert!(matches!(net.take_events()[..], [CallEvent::BridgeFailed { call: 30, agent: 1, .. }]), "no agent leg");
    // An agent with a customer cannot take a second one.
    agent_up(&mut net, 1);
    net.command(Command::Bridge { call: 30, agent: 1 });
    net.command(dial(31, "0366667778"));
    net.run_for(Duration::from_secs(1));
    net.take_events();
    net.command(Command::Bridge { call: 31, agent: 1 });
    assert!(matches!(net.take_events()[..], [CallEvent::BridgeFailed { call: 31, agent: 1, .. }]));
}

fn account(password: &str) -> Account {
    Account {
        tenant_id: 1,
        user_id: Some(42),
        realm: "demo.kakeru".into(),
        username: "agent42".into(),
        ha1_md5: ha1(Algorithm::Md5, "agent42", "demo.kakeru", password),
        ha1_sha256: ha1(Algorithm::Sha256, "agent42", "demo.kakeru", password),
        digest: DigestChallenges::Md5,
    }
}

fn register(net: &mut Net, password: &str, realm: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut req = sip::dialog::out_of_dialog(
        Method::Register,
        &format!("sip:{realm}"),
        &format!("sip:agent42@{realm}"),
        "regtag",
        &format!("sip:agent42@{realm}"),
        "reg-1@phone",
        1,
    );
    req.headers.push("Contact", format!("<sip:agent42@{PHONE}>"));
    req.headers.push("Expires", "600");
    let creds = Credentials { username: "agent42".into(), password: password.into() };
    let mut current = req;
    for _ in 0..2 {
        let now = net.now;
        net.phone.ep.send_request(now, addr(SHARD), current.clone()).expect("room");
        net.settle();
        let resp = net
            .phone
            .events
            .drain(..)
            .filter_map(|e| match e {
                sip::Event::Response { response, .. } if response.status >= 200 => Some(response),
                _ => None,
            })
            .next_back()
            .expect("a final response to REGISTER");
        statuses.push(resp.status);
        if resp.status != 401 {
            break;
        }
        current = sip::auth::authorize(&current, &resp, &creds, "cn0nce").expect("a usable challenge");
    }
    statuses
}

#[test]
fn phones_register_with_digest_and_wrong_passwords_do_not() {
    let mut net = Net::new(Script::Ring);
    net.command(Command::SetAccounts(vec![account("s3cret")]));
    assert_eq!(register(&mut net, "s3cret", "demo.kakeru"), vec![401, 200]);
    let regs: Vec<_> = net.take_events().into_iter().filter(|e| matches!(e, CallEvent::Registered { .. })).collect();
    match &regs[..] {
        [CallEvent::Registered { tenant_id: 1, user_id: Some(42), username, contact, source, expires_s }] => {
            assert_eq!(username, "agent42");
            assert_eq!(contact, &format!("sip:agent42@{PHONE}"));
            assert_eq!(*source, addr(PHONE));
            assert!((590..=600).contains(expires_s));
        }
        other => panic!("one registration expected: {other:?}"),
    }
    assert_eq!(register(&mut net, "wrong", "demo.kakeru"), vec![401, 401], "wrong password: challenged again");
    assert_eq!(register(&mut net, "s3cret", "other.tenant"), vec![403], "unknown realm");
    assert!(net.take_events().iter().all(|e| !matches!(e, CallEvent::Registered { .. })));
    let s = net.cc.stats().phones;
    assert_eq!((s.wrong_credentials, s.unknown_realm), (1, 1), "{s:?}");
}

#[test]
fn a_carrier_that_challenges_gets_our_credentials() {
    let mut net = Net::with_config(Script::Ring, |c| {
        c.carrier_credentials = Some(Credentials { username: "trunk1".into(), password: "trunkpw".into() });
    });
    let signer = NonceSigner::new(&keys(b"carrier"), "carrier.example", 300);
    // The carrier challenges the first INVITE of every call, then checks the retry.
    net.command(dial(40, "0377778888"));
    // Replace the carrier's first answer by a 401 by hand: take the INVITE's transaction.
    let first = net.carrier.invites[0].clone();
    assert!(first.headers.get("Authorization").is_none());
    let verified = verify_retry(&mut net, &signer, &first);
    assert!(verified, "the retried INVITE carries a valid Authorization");
}

/// Answers the carrier's pending INVITE with 401, lets the shard retry, verifies the retry.
fn verify_retry(net: &mut Net, signer: &NonceSigner, first: &Request) -> bool {
    let tx = net
        .carrier
        .events
        .iter()
        .find_map(|e| match e {
            sip::Event::Request { tx, request, .. } if request.method == Method::Invite => Some(*tx),
            _ => None,
        })
        .expect("the carrier saw the INVITE");
    let mut r = sip::message::response_to(first, 401, Some("ch"));
    r.headers.push("WWW-Authenticate", signer.challenge(net.unix_ms / 1000, Algorithm::Md5, false));
    let now = net.now;
    net.carrier.answers.clear();
    net.carrier.answer = Script::Answer { after: Duration::from_millis(300) };
    let _ = net.carrier.ep.send_response(now, tx, r);
    net.settle();
    let retry = net.carrier.invites.last().expect("a retried INVITE").clone();
    assert_ne!(retry.cseq().map(|c| c.seq), first.cseq().map(|c| c.seq), "CSeq moved on");
    let auth = retry.headers.get("Authorization").expect("Authorization on the retry").to_string();
    let ha = ha1(Algorithm::Md5, "trunk1", "carrier.example", "trunkpw");
    let v = signer.verify(net.unix_ms / 1000, "INVITE", &auth, |u, _| (u == "trunk1").then(|| ha.clone()));
    net.run_for(Duration::from_secs(1));
    matches!(v, sip::auth::Verdict::Ok { .. })
        && net.events.iter().any(|e| matches!(e, CallEvent::CustomerAnswered { call: 40, .. }))
}

#[test]
fn a_withheld_caller_id_dials_with_184() {
    let mut net = Net::new(Script::Ring);
    let Command::DialCustomer(mut d) = dial(50, "0312121212") else { unreachable!("dial builds DialCustomer") };
    d.caller_id = None;
    net.command(Command::DialCustomer(d));
    let inv = &net.carrier.invites[0];
    assert!(inv.uri.starts_with("sip:1840312121212@"), "{}", inv.uri);
    assert_eq!(inv.headers.get("Privacy"), Some("id"));
}

#[test]
fn garbage_datagrams_are_counted_drops_never_panics() {
    let mut net = Net::new(Script::Ring);
    let now = net.t();
    for junk in [&b""[..], b"\x00\x01\x02", b"INVITE sip:x SIP/2.0\r\n\r\n", b"SIP/2.0 200 OK\r\nVia: nope\r\n\r\n"] {
        net.cc.handle_datagram(now, addr(CARRIER), junk);
    }
    net.settle();
    assert!(net.cc.sip_stats().total_dropped() >= 3, "{:?}", net.cc.sip_stats());
    assert!(net.take_events().is_empty());
}

fn supervise(supervisor: u64, call: u64, mode: media::SupervisorMode) -> Command {
    Command::Supervise(dialer::calls::Supervise {
        supervisor,
        tenant_id: 1,
        call,
        mode,
        phone: dialer::calls::SupervisorPhone::Sip { target: format!("sip:sv{supervisor}@{PHONE}"), dest: addr(PHONE) },
    })
}

#[test]
fn a_supervisor_joins_changes_mode_and_leaves_with_the_customer() {
    use dialer::calls::SupervisionEnd;
    use media::SupervisorMode;
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(300) });
    agent_up(&mut net, 7);
    net.command(dial(60, "0312340060"));
    net.run_for(Duration::from_secs(1));
    // Not bridged yet: refused, nothing rings.
    let invites = net.phone.invites.len();
    net.command(supervise(42, 60, SupervisorMode::Listen));
    assert!(net.take_events().contains(&CallEvent::SupervisorLeft {
        supervisor: 42,
        call: 60,
        reason: SupervisionEnd::NotBridged
    }));
    assert_eq!(net.phone.invites.len(), invites);
    net.command(Command::Bridge { call: 60, agent: 7 });
    net.take_events();
    net.take_media();

    // The supervisor's phone is rung and joins the agent's media call in its mode.
    net.command(supervise(42, 60, SupervisorMode::Listen));
    net.run_for(Duration::from_secs(1));
    assert!(net.take_events().contains(&CallEvent::SupervisorJoined {
        supervisor: 42,
        call: 60,
        mode: SupervisorMode::Listen
    }));
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::AddSupervisor { call, id: 42, mode: SupervisorMode::Listen, .. }
        if *call == agent_media_call(7))));
    assert_eq!(net.cc.supervisor_legs(), 1);
    // A mode change is no new INVITE.
    let invites = net.phone.invites.len();
    net.command(supervise(42, 60, SupervisorMode::Barge));
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.phone.invites.len(), invites);
    assert!(net.take_events().contains(&CallEvent::SupervisorJoined {
        supervisor: 42,
        call: 60,
        mode: SupervisorMode::Barge
    }));
    assert!(net
        .take_media()
        .iter()
        .any(|c| matches!(c, Control::SetSupervisorMode { id: 42, mode: SupervisorMode::Barge, .. })));

    // A phone that refuses: the supervisor is unreachable.
    net.phone.answers.insert("sv43".into(), Script::Reject { status: 486, after: Duration::from_millis(100) });
    net.command(supervise(43, 60, SupervisorMode::Listen));
    net.run_for(Duration::from_secs(1));
    assert!(net.take_events().contains(&CallEvent::SupervisorLeft {
        supervisor: 43,
        call: 60,
        reason: SupervisionEnd::Unreachable(486)
    }));

    // The customer hangs up: the supervisor's leg ends with the call, its phone gets a BYE.
    let byes = net.phone.byes;
    let call_id = net.carrier.dialogs.keys().next().expect("dialog").clone();
    let now = net.now;
    net.carrier.bye(now, &call_id, addr(SHARD));
    net.run_for(Duration::from_millis(200));
    let ev = net.take_events();
    assert!(ev.contains(&CallEvent::SupervisorLeft { supervisor: 42, call: 60, reason: SupervisionEnd::CallEnded }));
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::TakeSupervisor { id: 42, .. })));
    assert_eq!(net.phone.byes, byes + 1, "the supervisor's phone got our BYE");
    assert_eq!(net.cc.supervisor_legs(), 0);
}
