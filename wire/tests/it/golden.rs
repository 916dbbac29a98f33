//! The JSON on the bus, pinned: one value of every message kind (every variant of each, every
//! state and cause of the agent's events, the view and settings `control_agents` holds), each
//! encoded to the exact text processes of the previous version wrote and decoded back. Hosts of
//! two versions talk during a rolling upgrade: a change here is a schema change (MESSAGES.md's
//! rules), never a refactoring's side effect. The strings were taken from the encoding of the
//! types as they were in `control` before they moved here.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wire::agent::*;
use wire::*;

/// Walks the golden strings in order, one per value.
struct Checker {
    next: usize,
}

impl Checker {
    fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(&mut self, v: T) {
        let golden = GOLDEN.get(self.next).unwrap_or_else(|| panic!("no golden string for case {}: {v:?}", self.next));
        let json = serde_json::to_string(&v).expect("encodes");
        assert_eq!(json, *golden, "case {}: {v:?} encodes differently", self.next);
        let back: T = serde_json::from_str(golden).expect("the golden string decodes");
        assert_eq!(back, v, "case {}: the golden string decodes to another value", self.next);
        self.next += 1;
    }
}

macro_rules! case {
    ($c:expr, $e:expr) => {
        $c.check($e)
    };
}

#[test]
fn every_message_kind_keeps_its_json() {
    let mut c = Checker { next: 0 };
    cases(&mut c);
    assert_eq!(c.next, GOLDEN.len(), "every golden string has its case");
}

#[test]
fn kinds_and_schema_versions_stay() {
    let kinds = [
        (ApiCommand::KIND, ApiCommand::SCHEMA),
        (ShardEvent::KIND, ShardEvent::SCHEMA),
        (DialerNotice::KIND, DialerNotice::SCHEMA),
        (AgentNotice::KIND, AgentNotice::SCHEMA),
        (PhoneOffer::KIND, PhoneOffer::SCHEMA),
        (SupervisorOffer::KIND, SupervisorOffer::SCHEMA),
        (Event::KIND, Event::SCHEMA),
    ];
    assert_eq!(
        kinds,
        [
            ("api_command", 1),
            ("shard_event", 2),
            ("dialer_notice", 1),
            ("agent_notice", 1),
            ("phone_offer", 1),
            ("supervisor_offer", 1),
            ("agent_event", 1),
        ]
    );
}

#[test]
fn a_number_that_is_not_digits_is_refused_by_name() {
    let e = serde_json::from_str::<ApiCommand>(r#"{"type":"conference","agent_id":7,"call_id":11,"tel":"03-1234"}"#)
        .expect_err("not digits");
    assert!(e.to_string().contains("a number of 1 to 30 digits"), "{e}");
}

// Shared body: one value of every message kind (every variant), as the bus carries them.
fn cases(c: &mut Checker) {
    let tel = Tel::new("0312345678").expect("tel");
    let config = AgentConfig {
        acw_ms: Some(30_000),
        idle_logoff_ms: 3_600_000,
        offer_timeout_ms: 20_000,
        leg_setup_timeout_ms: 60_000,
        no_answer_pause: Some(PauseReasonId(4)),
        no_answer_release_ms: Some(120_000),
        preview_timeout_ms: 210_000,
    };
    // kind api_command
    case!(
        c,
        ApiCommand::StartCallJob {
            agent_id: AgentId(7),
            campaign_id: CampaignId(3),
            config,
            call_job_id: Some(CallJobId(9)),
            dialing_group_id: Some(DialingGroupId(2))
        }
    );
    case!(
        c,
        ApiCommand::StartCallJob {
            agent_id: AgentId(7),
            campaign_id: CampaignId(3),
            config: AgentConfig::default(),
            call_job_id: None,
            dialing_group_id: None
        }
    );
    case!(c, ApiCommand::StopCallJob { agent_id: AgentId(7) });
    case!(c, ApiCommand::GoReady { agent_id: AgentId(7) });
    case!(c, ApiCommand::Pause { agent_id: AgentId(7), reason_id: PauseReasonId(2) });
    case!(c, ApiCommand::LogOff { agent_id: AgentId(7) });
    case!(
        c,
        ApiCommand::SupervisorForce { agent_id: AgentId(7), supervisor_id: SupervisorId(5), to: ForceTarget::Ready }
    );
    case!(
        c,
        ApiCommand::SupervisorForce {
            agent_id: AgentId(7),
            supervisor_id: SupervisorId(5),
            to: ForceTarget::Paused { reason_id: PauseReasonId(2) }
        }
    );
    case!(
        c,
        ApiCommand::SupervisorForce { agent_id: AgentId(7), supervisor_id: SupervisorId(5), to: ForceTarget::Offline }
    );
    case!(c, ApiCommand::SaveWrapUp { agent_id: AgentId(7), call_id: CallId(11), after: AfterWrapUp::Continue });
    case!(
        c,
        ApiCommand::SaveWrapUp {
            agent_id: AgentId(7),
            call_id: CallId(11),
            after: AfterWrapUp::Pause { reason_id: PauseReasonId(2) }
        }
    );
    case!(c, ApiCommand::SaveWrapUp { agent_id: AgentId(7), call_id: CallId(11), after: AfterWrapUp::EndJob });
    case!(c, ApiCommand::HangUpCustomer { agent_id: AgentId(7), call_id: CallId(11) });
    case!(c, ApiCommand::Activity { agent_id: AgentId(7) });
    case!(
        c,
        ApiCommand::PreviewDial {
            agent_id: AgentId(7),
            campaign_id: CampaignId(3),
            call_job_id: CallJobId(9),
            lead_id: LeadId(100),
            caller_id: Some(CallerIdId(6))
        }
    );
    case!(
        c,
        ApiCommand::PreviewDial {
            agent_id: AgentId(7),
            campaign_id: CampaignId(3),
            call_job_id: CallJobId(9),
            lead_id: LeadId(100),
            caller_id: None
        }
    );
    case!(c, ApiCommand::Hold { agent_id: AgentId(7), call_id: CallId(11) });
    case!(c, ApiCommand::Unhold { agent_id: AgentId(7), call_id: CallId(11) });
    case!(c, ApiCommand::Transfer { agent_id: AgentId(7), call_id: CallId(11), to_agent: AgentId(8) });
    case!(c, ApiCommand::Park { agent_id: AgentId(7), call_id: CallId(11) });
    case!(c, ApiCommand::PickUp { agent_id: AgentId(7), number: 9001 });
    case!(c, ApiCommand::TransferOutside { agent_id: AgentId(7), call_id: CallId(11), tel, caller_id: None });
    case!(c, ApiCommand::Conference { agent_id: AgentId(7), call_id: CallId(11), tel, caller_id: None });
    // A saved 外線転送's own caller ID (optional: the lines above are what earlier writers sent).
    let caller_id = Some(Tel::new("0355550100").expect("tel"));
    case!(c, ApiCommand::TransferOutside { agent_id: AgentId(7), call_id: CallId(11), tel, caller_id });
    case!(c, ApiCommand::Conference { agent_id: AgentId(7), call_id: CallId(11), tel, caller_id });
    case!(c, ApiCommand::EndConference { agent_id: AgentId(7), call_id: CallId(11) });
    case!(c, ApiCommand::LeaveConference { agent_id: AgentId(7), call_id: CallId(11) });
    // kind shard_event
    case!(c, ShardEvent::AgentLegUp { agent_id: AgentId(7), shard: 1 });
    case!(c, ShardEvent::AgentLegDown { agent_id: AgentId(7), shard: 1 });
    case!(c, ShardEvent::AgentUnreachable { agent_id: AgentId(7), sip_status: 480 });
    case!(
        c,
        ShardEvent::CustomerAnswered {
            call_id: CallId(11),
            campaign_id: CampaignId(3),
            lead_id: LeadId(100),
            shard: 1
        }
    );
    case!(c, ShardEvent::Bridged { call_id: CallId(11), agent_id: AgentId(7) });
    case!(
        c,
        ShardEvent::CallEnded {
            call_id: CallId(11),
            agent_id: Some(AgentId(7)),
            outcome: SipOutcome { status: 200, reason: "BYE".to_string(), ended_by: Party::Customer, talk_ms: 61_000 },
            result: SystemResult::NoEntry
        }
    );
    case!(
        c,
        ShardEvent::CallEnded {
            call_id: CallId(12),
            agent_id: None,
            outcome: SipOutcome { status: 486, reason: "Busy Here".to_string(), ended_by: Party::System, talk_ms: 0 },
            result: SystemResult::Busy
        }
    );
    case!(c, ShardEvent::PreviewPlaced { call_id: CallId(11), agent_id: AgentId(7), lead_id: LeadId(100) });
    case!(
        c,
        ShardEvent::PreviewNotDialled {
            agent_id: AgentId(7),
            lead_id: LeadId(100),
            result: "outside_hours".to_string()
        }
    );
    case!(c, ShardEvent::OutsideTransferred { call_id: CallId(11), agent_id: AgentId(7) });
    case!(c, ShardEvent::ResultKeyed { call_id: CallId(11), agent_id: AgentId(7), keyed: Keyed::Result { number: 3 } });
    case!(
        c,
        ShardEvent::ResultKeyed {
            call_id: CallId(11),
            agent_id: AgentId(7),
            keyed: Keyed::Recall { after_ms: 3_600_000 }
        }
    );
    case!(
        c,
        ShardEvent::RecallDue {
            agent_id: AgentId(7),
            campaign_id: CampaignId(3),
            call_job_id: CallJobId(9),
            lead_id: LeadId(100)
        }
    );
    case!(c, ShardEvent::ParkKeyed { agent_id: AgentId(7), call_id: CallId(11) });
    case!(c, ShardEvent::PickUpKeyed { agent_id: AgentId(7), number: 9002 });
    case!(
        c,
        ShardEvent::DialerStatus {
            campaign_id: CampaignId(3),
            dials_in_flight: 4,
            remaining_leads: 1200,
            dial_level_milli: 1500,
            predicted_abandon_ppm: 25_000
        }
    );
    // kind dialer_notice
    case!(c, DialerNotice::JobsChanged);
    case!(c, DialerNotice::PhonesChanged);
    case!(
        c,
        DialerNotice::Supervise {
            monitor_id: 21,
            supervisor_id: SupervisorId(5),
            call_id: CallId(11),
            mode: MonitorMode::Listen
        }
    );
    case!(
        c,
        DialerNotice::Supervise {
            monitor_id: 21,
            supervisor_id: SupervisorId(5),
            call_id: CallId(11),
            mode: MonitorMode::Whisper
        }
    );
    case!(
        c,
        DialerNotice::Supervise {
            monitor_id: 21,
            supervisor_id: SupervisorId(5),
            call_id: CallId(11),
            mode: MonitorMode::Barge
        }
    );
    case!(c, DialerNotice::EndSupervision { supervisor_id: SupervisorId(5) });
    // kind agent_notice
    case!(
        c,
        AgentNotice::RecallAssigned {
            agent_id: AgentId(7),
            recall_id: 31,
            lead_id: LeadId(100),
            due_at_ms: Some(1_800_000_000_000)
        }
    );
    case!(
        c,
        AgentNotice::RecallAssigned { agent_id: AgentId(7), recall_id: 31, lead_id: LeadId(100), due_at_ms: None }
    );
    case!(c, AgentNotice::JobStopped { call_job_id: CallJobId(9) });
    case!(c, AgentNotice::CallbackAssigned { agent_id: AgentId(7), callback_id: 41 });
    case!(c, AgentNotice::CallbackRegistered { callback_id: 41 });
    case!(c, AgentNotice::CallbacksOpen { open: 5 });
    case!(c, AgentNotice::PhoneAnswer { agent_id: AgentId(7), sdp: "v=0\r\n".to_string() });
    case!(c, AgentNotice::PhoneFailed { agent_id: AgentId(7), error: "no media shard".to_string() });
    case!(c, AgentNotice::MonitorAnswer { agent_id: AgentId(5), monitor_id: 21, sdp: "v=0\r\n".to_string() });
    case!(c, AgentNotice::MonitorFailed { agent_id: AgentId(5), monitor_id: 21, error: "call ended".to_string() });
    case!(
        c,
        AgentNotice::ParkChanged {
            number: 9001,
            call_id: CallId(11),
            change: ParkChange::Parked,
            agent_id: AgentId(7),
            at_ms: 1_000
        }
    );
    case!(
        c,
        AgentNotice::ParkChanged {
            number: 9001,
            call_id: CallId(11),
            change: ParkChange::PickedUp,
            agent_id: AgentId(8),
            at_ms: 2_000
        }
    );
    case!(
        c,
        AgentNotice::ParkChanged {
            number: 9001,
            call_id: CallId(11),
            change: ParkChange::HungUp,
            agent_id: AgentId(7),
            at_ms: 3_000
        }
    );
    case!(
        c,
        AgentNotice::ParkChanged {
            number: 9001,
            call_id: CallId(11),
            change: ParkChange::Returned,
            agent_id: AgentId(7),
            at_ms: 4_000
        }
    );
    case!(
        c,
        AgentNotice::OutsideTransfer { agent_id: AgentId(7), call_id: CallId(11), outcome: "answered".to_string() }
    );
    case!(c, AgentNotice::Conference { agent_id: AgentId(7), call_id: CallId(11), outcome: "joined".to_string() });
    // kind phone_offer, supervisor_offer
    case!(c, PhoneOffer { agent_id: AgentId(7), sdp: "v=0\r\n".to_string() });
    case!(
        c,
        SupervisorOffer {
            monitor_id: 21,
            supervisor_id: SupervisorId(5),
            call_id: CallId(11),
            mode: MonitorMode::Barge,
            sdp: "v=0\r\n".to_string()
        }
    );
    // kind agent_event: transitions (every state, every cause), commands, deferrals
    let states = [
        AgentState::Offline,
        AgentState::Ready,
        AgentState::Ringing,
        AgentState::Talking,
        AgentState::Hold,
        AgentState::WrapUp,
        AgentState::Paused { reason_id: PauseReasonId(2) },
        AgentState::Unknown,
    ];
    let causes = [
        Cause::Login,
        Cause::AgentLegUp,
        Cause::AgentLegDown,
        Cause::PhoneUnreachable,
        Cause::Offer,
        Cause::Declined,
        Cause::PreviewDial,
        Cause::NotDialled,
        Cause::NoAnswer,
        Cause::Bridged,
        Cause::CustomerEnded,
        Cause::Hold,
        Cause::Unhold,
        Cause::Transferred,
        Cause::Parked,
        Cause::WrapUpSaved,
        Cause::AcwTimeout,
        Cause::GoReady,
        Cause::PauseRequested,
        Cause::LogOffRequested,
        Cause::IdleTimeout,
        Cause::PauseReleased,
        Cause::Supervisor { supervisor_id: SupervisorId(5) },
    ];
    for (i, cause) in causes.into_iter().enumerate() {
        let from = states[i % states.len()];
        let to = states[(i + 1) % states.len()];
        let call_id = if i % 2 == 0 { Some(CallId(11)) } else { None };
        let lead_id = if i % 3 == 0 { Some(LeadId(100)) } else { None };
        let not_dialled = if i % 4 == 0 { Some(NotDialledReason::OutsideHours) } else { None };
        case!(
            c,
            Event::Transition(Transition {
                agent_id: AgentId(7),
                from,
                to,
                at_ms: 1_000 + i as u64,
                cause,
                call_id,
                lead_id,
                not_dialled
            })
        );
    }
    let reasons = [
        NotDialledReason::Restricted,
        NotDialledReason::ChannelLimit,
        NotDialledReason::Stopped,
        NotDialledReason::NumberInCall,
        NotDialledReason::OutsideHours,
        NotDialledReason::JobNotRunning,
        NotDialledReason::LeadNotDialable,
        NotDialledReason::CallerIdUnknown,
        NotDialledReason::Error,
    ];
    for reason in reasons {
        case!(
            c,
            Event::Transition(Transition {
                agent_id: AgentId(7),
                from: AgentState::Ringing,
                to: AgentState::Ready,
                at_ms: 5,
                cause: Cause::NotDialled,
                call_id: None,
                lead_id: Some(LeadId(100)),
                not_dialled: Some(reason)
            })
        );
    }
    case!(c, Event::Command(Command::DialAgentLeg { agent_id: AgentId(7), campaign_id: Some(CampaignId(3)) }));
    case!(c, Event::Command(Command::DialAgentLeg { agent_id: AgentId(7), campaign_id: None }));
    case!(c, Event::Command(Command::HangUpAgentLeg { agent_id: AgentId(7) }));
    case!(c, Event::Command(Command::Bridge { agent_id: AgentId(7), call_id: CallId(11) }));
    case!(c, Event::Command(Command::ReleaseCustomer { agent_id: AgentId(7), call_id: CallId(11) }));
    case!(c, Event::Command(Command::HangUpCustomer { agent_id: AgentId(7), call_id: CallId(11) }));
    case!(c, Event::Command(Command::HoldCustomer { agent_id: AgentId(7), call_id: CallId(11), held: true }));
    case!(c, Event::Command(Command::ParkCustomer { agent_id: AgentId(7), call_id: CallId(11), hold_ms: 180_000 }));
    case!(
        c,
        Event::Command(Command::DialPreview {
            agent_id: AgentId(7),
            campaign_id: CampaignId(3),
            call_job_id: CallJobId(9),
            lead_id: LeadId(100),
            caller_id: Some(CallerIdId(6))
        })
    );
    case!(
        c,
        Event::Command(Command::DialPreview {
            agent_id: AgentId(7),
            campaign_id: CampaignId(3),
            call_job_id: CallJobId(9),
            lead_id: LeadId(100),
            caller_id: None
        })
    );
    case!(
        c,
        Event::Command(Command::TransferOutside { agent_id: AgentId(7), call_id: CallId(11), tel, caller_id: None })
    );
    case!(c, Event::Command(Command::Conference { agent_id: AgentId(7), call_id: CallId(11), tel, caller_id: None }));
    let caller_id = Some(Tel::new("0355550100").expect("tel"));
    case!(c, Event::Command(Command::TransferOutside { agent_id: AgentId(7), call_id: CallId(11), tel, caller_id }));
    case!(c, Event::Command(Command::Conference { agent_id: AgentId(7), call_id: CallId(11), tel, caller_id }));
    case!(c, Event::Command(Command::EndConference { agent_id: AgentId(7), call_id: CallId(11) }));
    case!(c, Event::Command(Command::LeaveConference { agent_id: AgentId(7), call_id: CallId(11) }));
    case!(c, Event::Deferred { agent_id: AgentId(7), after_call: true });
    case!(c, Event::Deferred { agent_id: AgentId(7), after_call: false });
    // The agent's view as control_agents.view holds it (read by the API and the dialer).
    case!(
        c,
        AgentView {
            agent_id: AgentId(7),
            state: AgentState::Talking,
            since_ms: 1_000,
            call_id: Some(CallId(11)),
            leg_up: true,
            pending: Some(Pending::Pause { reason_id: PauseReasonId(2), cause: Cause::PauseRequested }),
            dialling: false,
            release_at_ms: None
        }
    );
    case!(
        c,
        AgentView {
            agent_id: AgentId(7),
            state: AgentState::Ringing,
            since_ms: 2_000,
            call_id: None,
            leg_up: true,
            pending: Some(Pending::LogOff { cause: Cause::Supervisor { supervisor_id: SupervisorId(5) } }),
            dialling: true,
            release_at_ms: Some(9_000)
        }
    );
    case!(
        c,
        AgentView {
            agent_id: AgentId(7),
            state: AgentState::Paused { reason_id: PauseReasonId(4) },
            since_ms: 3_000,
            call_id: None,
            leg_up: false,
            pending: None,
            dialling: false,
            release_at_ms: None
        }
    );
    // The agent's settings as control_agents.config holds them.
    case!(c, config);
    case!(c, AgentConfig::default());
}

/// The JSON the types wrote before they moved out of `control` (generated then, pasted here).
const GOLDEN: &[&str] = &[
    r#"{"type":"start_call_job","agent_id":7,"campaign_id":3,"config":{"acw_ms":30000,"idle_logoff_ms":3600000,"offer_timeout_ms":20000,"leg_setup_timeout_ms":60000,"no_answer_pause":4,"no_answer_release_ms":120000,"preview_timeout_ms":210000},"call_job_id":9,"dialing_group_id":2}"#,
    r#"{"type":"start_call_job","agent_id":7,"campaign_id":3,"config":{"acw_ms":null,"idle_logoff_ms":3600000,"offer_timeout_ms":20000,"leg_setup_timeout_ms":60000,"no_answer_pause":null,"no_answer_release_ms":null,"preview_timeout_ms":210000}}"#,
    r#"{"type":"stop_call_job","agent_id":7}"#,
    r#"{"type":"go_ready","agent_id":7}"#,
    r#"{"type":"pause","agent_id":7,"reason_id":2}"#,
    r#"{"type":"log_off","agent_id":7}"#,
    r#"{"type":"supervisor_force","agent_id":7,"supervisor_id":5,"to":{"to":"ready"}}"#,
    r#"{"type":"supervisor_force","agent_id":7,"supervisor_id":5,"to":{"to":"paused","reason_id":2}}"#,
    r#"{"type":"supervisor_force","agent_id":7,"supervisor_id":5,"to":{"to":"offline"}}"#,
    r#"{"type":"save_wrap_up","agent_id":7,"call_id":11,"after":{"after":"continue"}}"#,
    r#"{"type":"save_wrap_up","agent_id":7,"call_id":11,"after":{"after":"pause","reason_id":2}}"#,
    r#"{"type":"save_wrap_up","agent_id":7,"call_id":11,"after":{"after":"end_job"}}"#,
    r#"{"type":"hang_up_customer","agent_id":7,"call_id":11}"#,
    r#"{"type":"activity","agent_id":7}"#,
    r#"{"type":"preview_dial","agent_id":7,"campaign_id":3,"call_job_id":9,"lead_id":100,"caller_id":6}"#,
    r#"{"type":"preview_dial","agent_id":7,"campaign_id":3,"call_job_id":9,"lead_id":100}"#,
    r#"{"type":"hold","agent_id":7,"call_id":11}"#,
    r#"{"type":"unhold","agent_id":7,"call_id":11}"#,
    r#"{"type":"transfer","agent_id":7,"call_id":11,"to_agent":8}"#,
    r#"{"type":"park","agent_id":7,"call_id":11}"#,
    r#"{"type":"pick_up","agent_id":7,"number":9001}"#,
    r#"{"type":"transfer_outside","agent_id":7,"call_id":11,"tel":"0312345678"}"#,
    r#"{"type":"conference","agent_id":7,"call_id":11,"tel":"0312345678"}"#,
    r#"{"type":"transfer_outside","agent_id":7,"call_id":11,"tel":"0312345678","caller_id":"0355550100"}"#,
    r#"{"type":"conference","agent_id":7,"call_id":11,"tel":"0312345678","caller_id":"0355550100"}"#,
    r#"{"type":"end_conference","agent_id":7,"call_id":11}"#,
    r#"{"type":"leave_conference","agent_id":7,"call_id":11}"#,
    r#"{"type":"agent_leg_up","agent_id":7,"shard":1}"#,
    r#"{"type":"agent_leg_down","agent_id":7,"shard":1}"#,
    r#"{"type":"agent_unreachable","agent_id":7,"sip_status":480}"#,
    r#"{"type":"customer_answered","call_id":11,"campaign_id":3,"lead_id":100,"shard":1}"#,
    r#"{"type":"bridged","call_id":11,"agent_id":7}"#,
    r#"{"type":"call_ended","call_id":11,"agent_id":7,"outcome":{"status":200,"reason":"BYE","ended_by":"customer","talk_ms":61000},"result":"no_entry"}"#,
    r#"{"type":"call_ended","call_id":12,"agent_id":null,"outcome":{"status":486,"reason":"Busy Here","ended_by":"system","talk_ms":0},"result":"busy"}"#,
    r#"{"type":"preview_placed","call_id":11,"agent_id":7,"lead_id":100}"#,
    r#"{"type":"preview_not_dialled","agent_id":7,"lead_id":100,"result":"outside_hours"}"#,
    r#"{"type":"outside_transferred","call_id":11,"agent_id":7}"#,
    r#"{"type":"result_keyed","call_id":11,"agent_id":7,"keyed":{"keyed":"result","number":3}}"#,
    r#"{"type":"result_keyed","call_id":11,"agent_id":7,"keyed":{"keyed":"recall","after_ms":3600000}}"#,
    r#"{"type":"recall_due","agent_id":7,"campaign_id":3,"call_job_id":9,"lead_id":100}"#,
    r#"{"type":"park_keyed","agent_id":7,"call_id":11}"#,
    r#"{"type":"pick_up_keyed","agent_id":7,"number":9002}"#,
    r#"{"type":"dialer_status","campaign_id":3,"dials_in_flight":4,"remaining_leads":1200,"dial_level_milli":1500,"predicted_abandon_ppm":25000}"#,
    r#"{"type":"jobs_changed"}"#,
    r#"{"type":"phones_changed"}"#,
    r#"{"type":"supervise","monitor_id":21,"supervisor_id":5,"call_id":11,"mode":"listen"}"#,
    r#"{"type":"supervise","monitor_id":21,"supervisor_id":5,"call_id":11,"mode":"whisper"}"#,
    r#"{"type":"supervise","monitor_id":21,"supervisor_id":5,"call_id":11,"mode":"barge"}"#,
    r#"{"type":"end_supervision","supervisor_id":5}"#,
    r#"{"notice":"recall_assigned","agent_id":7,"recall_id":31,"lead_id":100,"due_at_ms":1800000000000}"#,
    r#"{"notice":"recall_assigned","agent_id":7,"recall_id":31,"lead_id":100,"due_at_ms":null}"#,
    r#"{"notice":"job_stopped","call_job_id":9}"#,
    r#"{"notice":"callback_assigned","agent_id":7,"callback_id":41}"#,
    r#"{"notice":"callback_registered","callback_id":41}"#,
    r#"{"notice":"callbacks_open","open":5}"#,
    r#"{"notice":"phone_answer","agent_id":7,"sdp":"v=0\r\n"}"#,
    r#"{"notice":"phone_failed","agent_id":7,"error":"no media shard"}"#,
    r#"{"notice":"monitor_answer","agent_id":5,"monitor_id":21,"sdp":"v=0\r\n"}"#,
    r#"{"notice":"monitor_failed","agent_id":5,"monitor_id":21,"error":"call ended"}"#,
    r#"{"notice":"park_changed","number":9001,"call_id":11,"change":"parked","agent_id":7,"at_ms":1000}"#,
    r#"{"notice":"park_changed","number":9001,"call_id":11,"change":"picked_up","agent_id":8,"at_ms":2000}"#,
    r#"{"notice":"park_changed","number":9001,"call_id":11,"change":"hung_up","agent_id":7,"at_ms":3000}"#,
    r#"{"notice":"park_changed","number":9001,"call_id":11,"change":"returned","agent_id":7,"at_ms":4000}"#,
    r#"{"notice":"outside_transfer","agent_id":7,"call_id":11,"outcome":"answered"}"#,
    r#"{"notice":"conference","agent_id":7,"call_id":11,"outcome":"joined"}"#,
    r#"{"agent_id":7,"sdp":"v=0\r\n"}"#,
    r#"{"monitor_id":21,"supervisor_id":5,"call_id":11,"mode":"barge","sdp":"v=0\r\n"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"offline"},"to":{"state":"ready"},"at_ms":1000,"cause":{"cause":"login"},"call_id":11,"lead_id":100,"not_dialled":"outside_hours"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ready"},"to":{"state":"ringing"},"at_ms":1001,"cause":{"cause":"agent_leg_up"},"call_id":null}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"talking"},"at_ms":1002,"cause":{"cause":"agent_leg_down"},"call_id":11}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"talking"},"to":{"state":"hold"},"at_ms":1003,"cause":{"cause":"phone_unreachable"},"call_id":null,"lead_id":100}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"hold"},"to":{"state":"wrap_up"},"at_ms":1004,"cause":{"cause":"offer"},"call_id":11,"not_dialled":"outside_hours"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"wrap_up"},"to":{"state":"paused","reason_id":2},"at_ms":1005,"cause":{"cause":"declined"},"call_id":null}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"paused","reason_id":2},"to":{"state":"unknown"},"at_ms":1006,"cause":{"cause":"preview_dial"},"call_id":11,"lead_id":100}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"unknown"},"to":{"state":"offline"},"at_ms":1007,"cause":{"cause":"not_dialled"},"call_id":null}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"offline"},"to":{"state":"ready"},"at_ms":1008,"cause":{"cause":"no_answer"},"call_id":11,"not_dialled":"outside_hours"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ready"},"to":{"state":"ringing"},"at_ms":1009,"cause":{"cause":"bridged"},"call_id":null,"lead_id":100}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"talking"},"at_ms":1010,"cause":{"cause":"customer_ended"},"call_id":11}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"talking"},"to":{"state":"hold"},"at_ms":1011,"cause":{"cause":"hold"},"call_id":null}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"hold"},"to":{"state":"wrap_up"},"at_ms":1012,"cause":{"cause":"unhold"},"call_id":11,"lead_id":100,"not_dialled":"outside_hours"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"wrap_up"},"to":{"state":"paused","reason_id":2},"at_ms":1013,"cause":{"cause":"transferred"},"call_id":null}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"paused","reason_id":2},"to":{"state":"unknown"},"at_ms":1014,"cause":{"cause":"parked"},"call_id":11}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"unknown"},"to":{"state":"offline"},"at_ms":1015,"cause":{"cause":"wrap_up_saved"},"call_id":null,"lead_id":100}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"offline"},"to":{"state":"ready"},"at_ms":1016,"cause":{"cause":"acw_timeout"},"call_id":11,"not_dialled":"outside_hours"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ready"},"to":{"state":"ringing"},"at_ms":1017,"cause":{"cause":"go_ready"},"call_id":null}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"talking"},"at_ms":1018,"cause":{"cause":"pause_requested"},"call_id":11,"lead_id":100}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"talking"},"to":{"state":"hold"},"at_ms":1019,"cause":{"cause":"log_off_requested"},"call_id":null}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"hold"},"to":{"state":"wrap_up"},"at_ms":1020,"cause":{"cause":"idle_timeout"},"call_id":11,"not_dialled":"outside_hours"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"wrap_up"},"to":{"state":"paused","reason_id":2},"at_ms":1021,"cause":{"cause":"pause_released"},"call_id":null,"lead_id":100}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"paused","reason_id":2},"to":{"state":"unknown"},"at_ms":1022,"cause":{"cause":"supervisor","supervisor_id":5},"call_id":11}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"restricted"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"channel_limit"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"stopped"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"number_in_call"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"outside_hours"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"job_not_running"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"lead_not_dialable"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"caller_id_unknown"}"#,
    r#"{"event":"transition","agent_id":7,"from":{"state":"ringing"},"to":{"state":"ready"},"at_ms":5,"cause":{"cause":"not_dialled"},"call_id":null,"lead_id":100,"not_dialled":"error"}"#,
    r#"{"event":"command","command":"dial_agent_leg","agent_id":7,"campaign_id":3}"#,
    r#"{"event":"command","command":"dial_agent_leg","agent_id":7}"#,
    r#"{"event":"command","command":"hang_up_agent_leg","agent_id":7}"#,
    r#"{"event":"command","command":"bridge","agent_id":7,"call_id":11}"#,
    r#"{"event":"command","command":"release_customer","agent_id":7,"call_id":11}"#,
    r#"{"event":"command","command":"hang_up_customer","agent_id":7,"call_id":11}"#,
    r#"{"event":"command","command":"hold_customer","agent_id":7,"call_id":11,"held":true}"#,
    r#"{"event":"command","command":"park_customer","agent_id":7,"call_id":11,"hold_ms":180000}"#,
    r#"{"event":"command","command":"dial_preview","agent_id":7,"campaign_id":3,"call_job_id":9,"lead_id":100,"caller_id":6}"#,
    r#"{"event":"command","command":"dial_preview","agent_id":7,"campaign_id":3,"call_job_id":9,"lead_id":100}"#,
    r#"{"event":"command","command":"transfer_outside","agent_id":7,"call_id":11,"tel":"0312345678"}"#,
    r#"{"event":"command","command":"conference","agent_id":7,"call_id":11,"tel":"0312345678"}"#,
    r#"{"event":"command","command":"transfer_outside","agent_id":7,"call_id":11,"tel":"0312345678","caller_id":"0355550100"}"#,
    r#"{"event":"command","command":"conference","agent_id":7,"call_id":11,"tel":"0312345678","caller_id":"0355550100"}"#,
    r#"{"event":"command","command":"end_conference","agent_id":7,"call_id":11}"#,
    r#"{"event":"command","command":"leave_conference","agent_id":7,"call_id":11}"#,
    r#"{"event":"deferred","agent_id":7,"after_call":true}"#,
    r#"{"event":"deferred","agent_id":7,"after_call":false}"#,
    r#"{"agent_id":7,"state":{"state":"talking"},"since_ms":1000,"call_id":11,"leg_up":true,"pending":{"pending":"pause","reason_id":2,"cause":{"cause":"pause_requested"}}}"#,
    r#"{"agent_id":7,"state":{"state":"ringing"},"since_ms":2000,"call_id":null,"leg_up":true,"pending":{"pending":"log_off","cause":{"cause":"supervisor","supervisor_id":5}},"dialling":true,"release_at_ms":9000}"#,
    r#"{"agent_id":7,"state":{"state":"paused","reason_id":4},"since_ms":3000,"call_id":null,"leg_up":false,"pending":null}"#,
    r#"{"acw_ms":30000,"idle_logoff_ms":3600000,"offer_timeout_ms":20000,"leg_setup_timeout_ms":60000,"no_answer_pause":4,"no_answer_release_ms":120000,"preview_timeout_ms":210000}"#,
    r#"{"acw_ms":null,"idle_logoff_ms":3600000,"offer_timeout_ms":20000,"leg_setup_timeout_ms":60000,"no_answer_pause":null,"no_answer_release_ms":null,"preview_timeout_ms":210000}"#,
];
