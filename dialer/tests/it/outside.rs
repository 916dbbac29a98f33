//! 外線転送 in the shard's call control under virtual time: the outside leg from the call's caller
//! ID, the customer's wait meanwhile, the bridge in the customer's own media call with the call's
//! recording going on, the way back to the agent when the outside party does not answer, and the
//! end of both legs when either party hangs up.

use std::time::Duration;

use dialer::calls::{
    agent_media_call, conference_leg_id, customer_media_call, CallEvent, Command, ConferenceEnd, EndCause,
    OutsideFailure, Party, TransferOutside,
};
use media::shard::Control;
use media::{RecordingId, Role};

use crate::calls::{agent_up, dial, ended};
use crate::net::{addr, Net, Script, SHARD};

fn to(call: u64, tel: &str) -> TransferOutside {
    TransferOutside {
        call,
        tel: tel.to_string(),
        caller_id: Some("0312345678".into()),
        ring_timeout: Duration::from_secs(30),
    }
}

fn outside(call: u64, tel: &str) -> Command {
    Command::TransferOutside(to(call, tel))
}

/// The Call-ID of the carrier's confirmed dialog with `tel`.
fn dialog_with(net: &Net, tel: &str) -> String {
    let d = net.carrier.dialogs.iter().find(|(_, d)| d.local.contains(tel));
    d.map(|(id, _)| id.clone()).expect("a dialog with the number")
}

/// An agent (7) talking with customer `call` (answered, bridged).
fn talking(net: &mut Net, call: u64) {
    agent_up(net, 7);
    net.command(dial(call, "0311112222"));
    net.run_for(Duration::from_secs(1));
    net.command(Command::Bridge { call, agent: 7 });
    net.run_for(Duration::from_secs(5));
    net.take_events();
    net.take_media();
}

#[test]
fn the_outside_party_answers_and_talks_with_the_customer() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    net.carrier.answers.insert("0399998888".into(), Script::Answer { after: Duration::from_secs(4) });
    talking(&mut net, 1);
    net.command(outside(1, "0399998888"));
    // The second carrier leg, from the call's caller ID; the customer waits off the agent's leg.
    let invite = net.carrier.invites.last().expect("the outside leg's INVITE").clone();
    assert_eq!(invite.uri, format!("sip:0399998888@{}", addr(crate::net::CARRIER).ip()));
    assert!(invite.headers.get("From").is_some_and(|f| f.contains("0312345678")), "the call's caller ID");
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::StopRecording { call } if *call == agent_media_call(7))));
    assert!(m.iter().any(|c| matches!(c, Control::MoveCustomer { from, to }
        if *from == agent_media_call(7) && *to == customer_media_call(1))));
    assert_eq!(net.cc.outside_legs(), 1);
    net.run_for(Duration::from_secs(3));
    assert!(net.take_events().is_empty(), "still ringing: nothing to tell");
    net.run_for(Duration::from_secs(2));
    let ev = net.take_events();
    assert_eq!(ev, vec![CallEvent::OutsideAnswered { call: 1, agent: 7 }]);
    // The outside party takes the agent's place in the customer's own media call, recorded in the
    // call's one recording.
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::SetAgent { call, .. } if *call == customer_media_call(1))));
    assert!(m.iter().any(|c| matches!(c, Control::StartRecording { call, id, .. }
        if *call == customer_media_call(1) && *id == RecordingId(1))));
    assert!(m.iter().any(|c| matches!(c, Control::SetLoop { call, role: Role::Customer, clip: None }
        if *call == customer_media_call(1))));
    // The agent is free for another customer.
    net.command(dial(2, "0311113333"));
    net.run_for(Duration::from_secs(1));
    net.command(Command::Bridge { call: 2, agent: 7 });
    assert!(net.take_events().contains(&CallEvent::Bridged { call: 2, agent: 7 }));
    // The outside party hangs up: the customer is hung up too, one end for the call.
    net.run_for(Duration::from_secs(20));
    let outside_dialog = dialog_with(&net, "0399998888");
    let byes = net.carrier.byes;
    let now = net.now;
    net.carrier.bye(now, &outside_dialog, addr(SHARD));
    net.run_for(Duration::from_millis(200));
    let ev = net.take_events();
    let e = ended(&ev, 1);
    assert_eq!(e.len(), 1, "{ev:?}");
    assert_eq!((e[0].cause, e[0].ended_by, e[0].agent), (EndCause::Completed, Party::Agent, None));
    assert!((31_000..31_500).contains(&e[0].talk_ms), "talk time from the first bridge: {}", e[0].talk_ms);
    assert_eq!(net.carrier.byes, byes + 1, "the customer got a BYE");
    assert_eq!(net.cc.outside_legs(), 0);
    assert!(net.take_media().iter().any(|c| matches!(c, Control::EndCall { call } if *call == customer_media_call(1))));
}

#[test]
fn the_customer_hanging_up_hangs_up_the_outside_party() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    talking(&mut net, 3);
    net.command(outside(3, "0399998888"));
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.take_events(), vec![CallEvent::OutsideAnswered { call: 3, agent: 7 }]);
    let customer = dialog_with(&net, "0311112222");
    let byes = net.carrier.byes;
    let now = net.now;
    net.carrier.bye(now, &customer, addr(SHARD));
    net.run_for(Duration::from_millis(200));
    let e = ended(&net.take_events(), 3);
    assert_eq!((e.len(), e[0].ended_by, e[0].cause), (1, Party::Customer, EndCause::Completed));
    assert_eq!(net.carrier.byes, byes + 1, "the outside party got a BYE");
    assert_eq!((net.cc.outside_legs(), net.cc.customer_calls()), (0, 0));
}

#[test]
fn a_refused_or_unanswered_outside_leg_brings_the_customer_back_to_the_agent() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    net.carrier.answers.insert("0399990486".into(), Script::Reject { status: 486, after: Duration::from_secs(2) });
    net.carrier.answers.insert("0399990000".into(), Script::Ring);
    talking(&mut net, 4);
    let free = net.cc.free_ports();
    net.command(outside(4, "0399990486"));
    net.take_media();
    net.run_for(Duration::from_secs(3));
    let ev = net.take_events();
    assert_eq!(ev, vec![CallEvent::OutsideFailed { call: 4, agent: 7, status: 486, reason: OutsideFailure::Busy }]);
    let m = net.take_media();
    assert!(
        m.iter().any(|c| matches!(c, Control::MoveCustomer { from, to }
        if *from == customer_media_call(4) && *to == agent_media_call(7))),
        "back on the agent's leg"
    );
    assert!(
        m.iter().any(|c| matches!(c, Control::StartRecording { call, id, .. }
        if *call == agent_media_call(7) && *id == RecordingId(4))),
        "the recording goes on"
    );
    assert_eq!(net.cc.free_ports(), free, "the outside leg's port came back");
    // No answer within the ring timeout: CANCEL, and back again.
    net.command(outside(4, "0399990000"));
    net.run_for(Duration::from_secs(29));
    assert!(net.take_events().is_empty(), "rings for 30 s");
    net.run_for(Duration::from_secs(2));
    let ev = net.take_events();
    assert_eq!(ev, vec![CallEvent::OutsideFailed { call: 4, agent: 7, status: 408, reason: OutsideFailure::NoAnswer }]);
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.cc.outside_legs(), 0, "the cancelled leg is gone once the carrier answered the CANCEL");
    // The customer talks with the agent again: hanging up ends it with the agent.
    net.command(Command::HangUpCustomer { call: 4, by: Party::Agent });
    net.run_for(Duration::from_millis(200));
    let e = ended(&net.take_events(), 4);
    assert_eq!((e.len(), e[0].agent, e[0].cause), (1, Some(7), EndCause::Completed));
    // A call not bridged here is not transferred.
    net.command(outside(99, "0399998888"));
    assert!(net.take_events().is_empty());
}

#[test]
fn a_conference_mixes_the_third_party_in_and_the_agent_may_drop_it_or_leave() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    net.carrier.answers.insert("0399990486".into(), Script::Reject { status: 486, after: Duration::from_secs(1) });
    talking(&mut net, 5);
    let (am, cm, id) = (agent_media_call(7), customer_media_call(5), conference_leg_id(5));
    // A busy third party: the customer never left the agent.
    net.command(Command::Conference(to(5, "0399990486")));
    net.run_for(Duration::from_secs(2));
    let ev = net.take_events();
    let busy = ConferenceEnd::NotAnswered(OutsideFailure::Busy);
    assert_eq!(ev, vec![CallEvent::ConferenceEnded { call: 5, agent: 7, reason: busy }]);
    assert!(!net.take_media().iter().any(|c| matches!(c, Control::MoveCustomer { .. })), "the customer stays");
    // The third party answers: mixed into the agent's call as a barging leg (each hears the others).
    net.command(Command::Conference(to(5, "0399998888")));
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.take_events(), vec![CallEvent::ConferenceJoined { call: 5, agent: 7 }]);
    let m = net.take_media();
    assert!(m
        .iter()
        .any(|c| matches!(c, Control::AddSupervisor { call, id: i, mode: media::SupervisorMode::Barge, .. }
        if *call == am && *i == id)));
    assert!(!m.iter().any(|c| matches!(c, Control::MoveCustomer { .. })));
    // Dropped: the third party gets a BYE and leaves the mix.
    let byes = net.carrier.byes;
    net.command(Command::EndConference { call: 5 });
    net.run_for(Duration::from_millis(200));
    assert_eq!(
        net.take_events(),
        vec![CallEvent::ConferenceEnded { call: 5, agent: 7, reason: ConferenceEnd::Dropped }]
    );
    assert!(net
        .take_media()
        .iter()
        .any(|c| matches!(c, Control::TakeSupervisor { call, id: i } if *call == am && *i == id)));
    assert_eq!((net.carrier.byes, net.cc.outside_legs()), (byes + 1, 0));
    // Again, and the agent leaves: the customer and the third party go on in the customer's call.
    net.command(Command::Conference(to(5, "0399998888")));
    net.run_for(Duration::from_secs(1));
    net.take_events();
    net.take_media();
    net.command(Command::LeaveConference { call: 5 });
    let ev = net.take_events();
    assert_eq!(
        ev,
        vec![
            CallEvent::ConferenceEnded { call: 5, agent: 7, reason: ConferenceEnd::AgentLeft },
            CallEvent::OutsideAnswered { call: 5, agent: 7 }
        ]
    );
    let m = net.take_media();
    let order: Vec<&str> = m
        .iter()
        .filter_map(|c| match c {
            Control::TakeSupervisor { call, .. } if *call == am => Some("take"),
            Control::MoveCustomer { from, to } if *from == am && *to == cm => Some("move"),
            Control::SetAgent { call, .. } if *call == cm => Some("set"),
            Control::StartRecording { call, .. } if *call == cm => Some("record"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["take", "move", "set", "record"]);
    // The agent is free; the customer hangs up: the third party is hung up too.
    net.command(dial(6, "0311113333"));
    net.run_for(Duration::from_secs(1));
    net.command(Command::Bridge { call: 6, agent: 7 });
    assert!(net.take_events().contains(&CallEvent::Bridged { call: 6, agent: 7 }));
    let customer = dialog_with(&net, "0311112222");
    let byes = net.carrier.byes;
    let now = net.now;
    net.carrier.bye(now, &customer, addr(SHARD));
    net.run_for(Duration::from_millis(200));
    let e = ended(&net.take_events(), 5);
    assert_eq!((e.len(), e[0].agent, e[0].cause), (1, None, EndCause::Completed));
    assert_eq!((net.carrier.byes, net.cc.outside_legs()), (byes + 1, 0));
}

#[test]
fn the_customer_leaving_a_conference_ends_it() {
    let mut net = Net::new(Script::Answer { after: Duration::from_millis(500) });
    talking(&mut net, 8);
    net.command(Command::Conference(to(8, "0399998888")));
    net.run_for(Duration::from_secs(1));
    net.take_events();
    let customer = dialog_with(&net, "0311112222");
    let byes = net.carrier.byes;
    let now = net.now;
    net.carrier.bye(now, &customer, addr(SHARD));
    net.run_for(Duration::from_millis(200));
    let ev = net.take_events();
    assert!(ev.contains(&CallEvent::ConferenceEnded { call: 8, agent: 7, reason: ConferenceEnd::CallEnded }), "{ev:?}");
    assert_eq!(ended(&ev, 8)[0].agent, Some(7), "the agent was still on the call");
    assert_eq!((net.carrier.byes, net.cc.outside_legs()), (byes + 1, 0), "the third party got a BYE");
    let m = net.take_media();
    assert!(m.iter().any(|c| matches!(c, Control::TakeSupervisor { id, .. } if *id == conference_leg_id(8))));
}
