//! Agent state machine under virtual time: one test per rule of SPEC 5 / issue 3.

use control::agent::{
    AfterWrapUp, AgentConfig, AgentError, AgentId, AgentState, CallId, Cause, Command, Event, Floor, FloorLimits,
    ForceTarget, Input, OfferRefused, PauseReasonId, Pending, SupervisorId, Transition,
};

pub const LUNCH: PauseReasonId = PauseReasonId(1);
pub const AWAY: PauseReasonId = PauseReasonId(2);
pub const NO_ANSWER: PauseReasonId = PauseReasonId(3);
const MIN: u64 = 60_000;
const A: AgentId = AgentId(1);
const B: AgentId = AgentId(2);
const C1: CallId = CallId(100);
const C2: CallId = CallId(101);
const C3: CallId = CallId(102);

/// A floor driven under virtual time: fires every deadline in order, collects every event.
pub struct Sim {
    pub floor: Floor,
    pub now: u64,
    pub events: Vec<Event>,
}

impl Sim {
    pub fn new(agents: &[AgentId]) -> Sim {
        let mut floor = Floor::new(FloorLimits::default(), [LUNCH, AWAY, NO_ANSWER]);
        for &a in agents {
            floor.add_agent(a).expect("fresh floor");
        }
        Sim { floor, now: 1_000_000, events: Vec::new() }
    }

    pub fn input(&mut self, a: AgentId, i: Input) -> Result<(), AgentError> {
        let r = self.floor.handle_input(self.now, a, i);
        self.drain();
        r
    }

    pub fn drain(&mut self) {
        while let Some(e) = self.floor.poll_event() {
            self.events.push(e);
        }
    }

    /// Advances virtual time by `ms`, firing deadlines at their exact times.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        while let Some(t) = self.floor.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.floor.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    pub fn state(&self, a: AgentId) -> AgentState {
        self.floor.agent(a).expect("agent exists").state
    }

    pub fn transitions(&self, a: AgentId) -> Vec<Transition> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Transition(t) if t.agent_id == a => Some(*t),
                _ => None,
            })
            .collect()
    }

    pub fn last(&self, a: AgentId) -> Transition {
        *self.transitions(a).last().expect("a transition")
    }

    pub fn commands(&self) -> Vec<Command> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Command(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Logs in and brings the leg up: ready.
    pub fn ready(&mut self, a: AgentId, config: AgentConfig) {
        self.input(a, Input::Login { config }).expect("login");
        self.input(a, Input::AgentLegUp).expect("leg up");
        assert_eq!(self.state(a), AgentState::Ready);
    }

    pub fn talking(&mut self, a: AgentId, c: CallId) {
        self.input(a, Input::Offer { call_id: c }).expect("offer");
        self.input(a, Input::Bridged { call_id: c }).expect("bridge");
        assert_eq!(self.state(a), AgentState::Talking);
    }
}

pub fn acw(secs: u64) -> AgentConfig {
    AgentConfig { acw_ms: Some(secs * 1000), ..AgentConfig::default() }
}

#[test]
fn login_dials_the_agent_leg_then_ready() {
    let mut s = Sim::new(&[A]);
    let t0 = s.now;
    s.input(A, Input::Login { config: acw(30) }).unwrap();
    assert_eq!(s.state(A), AgentState::Ringing);
    assert_eq!(s.commands(), vec![Command::DialAgentLeg { agent_id: A, campaign_id: None }]);
    s.advance(1500);
    s.input(A, Input::AgentLegUp).unwrap();
    let ts = s.transitions(A);
    assert_eq!(ts.len(), 2);
    assert_eq!(
        ts[0],
        Transition {
            agent_id: A,
            from: AgentState::Offline,
            to: AgentState::Ringing,
            at_ms: t0,
            cause: Cause::Login,
            call_id: None,
            lead_id: None,
            not_dialled: None,
        }
    );
    assert_eq!((ts[1].to, ts[1].at_ms, ts[1].cause), (AgentState::Ready, t0 + 1500, Cause::AgentLegUp));
}

#[test]
fn leg_not_up_in_time_makes_the_agent_unknown() {
    let mut s = Sim::new(&[A]);
    s.input(A, Input::Login { config: AgentConfig::default() }).unwrap();
    s.advance(59_999);
    assert_eq!(s.state(A), AgentState::Ringing);
    s.advance(1);
    assert_eq!(s.state(A), AgentState::Unknown);
    assert_eq!(s.last(A).cause, Cause::PhoneUnreachable);
    assert!(s.commands().contains(&Command::HangUpAgentLeg { agent_id: A }));
    // From unknown the agent can log in again.
    s.input(A, Input::Login { config: AgentConfig::default() }).unwrap();
    assert_eq!(s.state(A), AgentState::Ringing);
}

#[test]
fn never_two_customers() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, acw(30));
    s.input(A, Input::Offer { call_id: C1 }).unwrap();
    assert_eq!(
        s.input(A, Input::Offer { call_id: C2 }),
        Err(AgentError::OfferRefused(OfferRefused::NotReady { state: AgentState::Ringing }))
    );
    s.input(A, Input::Bridged { call_id: C1 }).unwrap();
    assert_eq!(
        s.input(A, Input::Offer { call_id: C2 }),
        Err(AgentError::OfferRefused(OfferRefused::NotReady { state: AgentState::Talking }))
    );
    // The same customer to a second agent: refused too.
    s.ready(B, acw(30));
    assert_eq!(
        s.input(B, Input::Offer { call_id: C1 }),
        Err(AgentError::OfferRefused(OfferRefused::CallTaken { agent_id: A }))
    );
    assert_eq!(s.state(B), AgentState::Ready);
    assert_eq!(s.floor.call_owner(C1), Some(A));
}

#[test]
fn offer_goes_to_the_longest_idle_ready_agent() {
    let mut s = Sim::new(&[A, B]);
    s.ready(B, acw(30));
    s.advance(10);
    s.ready(A, acw(30));
    assert_eq!(s.floor.ready_agents().collect::<Vec<_>>(), vec![B, A]);
    assert_eq!(s.floor.offer_to_longest_ready(s.now, C1), Ok(B));
    s.drain();
    assert!(s.commands().contains(&Command::Bridge { agent_id: B, call_id: C1 }));
    assert_eq!(s.floor.offer_to_longest_ready(s.now, C2), Ok(A));
    assert_eq!(
        s.floor.offer_to_longest_ready(s.now, CallId(7)),
        Err(AgentError::OfferRefused(OfferRefused::NoReadyAgent))
    );
}

#[test]
fn a_transfer_hands_the_customer_to_a_ready_colleague_and_the_agent_wraps_up() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, acw(30));
    s.ready(B, acw(30));
    // Only the agent's own call, only while talking or on hold.
    assert!(matches!(s.input(B, Input::TransferOut { call_id: C1 }), Err(AgentError::NotAllowed { .. })));
    s.talking(A, C1);
    assert!(matches!(s.input(A, Input::TransferOut { call_id: C2 }), Err(AgentError::WrongCall { .. })));
    s.input(A, Input::Hold { call_id: C1 }).unwrap();
    s.input(A, Input::TransferOut { call_id: C1 }).unwrap();
    // A lets go (the customer waits) and writes its record; the call is no longer A's.
    assert_eq!(s.state(A), AgentState::WrapUp);
    assert_eq!(s.last(A).cause, Cause::Transferred);
    assert_eq!(s.last(A).call_id, Some(C1));
    assert!(s.commands().contains(&Command::ReleaseCustomer { agent_id: A, call_id: C1 }));
    assert_eq!(s.floor.call_owner(C1), None);
    // B is offered the same call and talks with the customer; A's wrap-up is untouched.
    s.input(B, Input::Offer { call_id: C1 }).unwrap();
    assert!(s.commands().contains(&Command::Bridge { agent_id: B, call_id: C1 }));
    s.input(B, Input::Bridged { call_id: C1 }).unwrap();
    assert_eq!(s.floor.call_owner(C1), Some(B));
    s.input(B, Input::CustomerEnded { call_id: C1 }).unwrap();
    assert_eq!((s.state(A), s.state(B)), (AgentState::WrapUp, AgentState::WrapUp));
}

#[test]
fn talk_hold_and_acw_ends_after_the_campaign_seconds() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    s.talking(A, C1);
    s.input(A, Input::Hold { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::Hold);
    assert!(matches!(s.input(A, Input::Hold { call_id: C1 }), Err(AgentError::NotAllowed { .. })));
    assert!(
        s.commands().contains(&Command::HoldCustomer { agent_id: A, call_id: C1, held: true }),
        "the shard is told"
    );
    s.input(A, Input::Unhold { call_id: C1 }).unwrap();
    assert!(s.commands().contains(&Command::HoldCustomer { agent_id: A, call_id: C1, held: false }));
    assert!(matches!(s.input(A, Input::CustomerEnded { call_id: C2 }), Err(AgentError::WrongCall { .. })));
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    let ended = s.now;
    assert_eq!(s.state(A), AgentState::WrapUp);
    assert_eq!(s.floor.call_owner(C1), None);
    s.advance(29_999);
    assert_eq!(s.state(A), AgentState::WrapUp);
    s.advance(1);
    assert_eq!(s.state(A), AgentState::Ready);
    let t = s.last(A);
    assert_eq!(
        (t.from, t.cause, t.at_ms, t.call_id),
        (AgentState::WrapUp, Cause::AcwTimeout, ended + 30_000, Some(C1))
    );
}

#[test]
fn acw_ends_when_the_record_is_saved() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(300));
    s.talking(A, C1);
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    s.advance(5_000);
    s.input(A, Input::WrapUpSaved { call_id: C1, after: AfterWrapUp::Continue }).unwrap();
    assert_eq!(s.state(A), AgentState::Ready);
    assert_eq!(s.last(A).cause, Cause::WrapUpSaved);
    // No ACW timer left behind.
    let n = s.transitions(A).len();
    s.advance(300_000);
    assert_eq!(s.transitions(A).len(), n);
    // A record saved late changes nothing.
    s.input(A, Input::WrapUpSaved { call_id: C1, after: AfterWrapUp::EndJob }).unwrap();
    assert_eq!(s.state(A), AgentState::Ready);
}

#[test]
fn state_after_saving_pause_or_end_job() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, acw(300));
    s.talking(A, C1);
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    s.input(A, Input::WrapUpSaved { call_id: C1, after: AfterWrapUp::Pause { reason_id: AWAY } }).unwrap();
    assert_eq!(s.state(A), AgentState::Paused { reason_id: AWAY });

    s.ready(B, acw(300));
    s.talking(B, C2);
    s.input(B, Input::CustomerEnded { call_id: C2 }).unwrap();
    s.input(B, Input::WrapUpSaved { call_id: C2, after: AfterWrapUp::EndJob }).unwrap();
    assert_eq!(s.state(B), AgentState::Offline);
    assert!(s.commands().contains(&Command::HangUpAgentLeg { agent_id: B }));
    assert!(!s.floor.agent(B).unwrap().leg_up);
}

#[test]
fn no_acw_goes_straight_to_ready() {
    let mut s = Sim::new(&[A]);
    s.ready(A, AgentConfig::default());
    s.talking(A, C1);
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::Ready);
    assert_eq!(s.floor.agent(A).unwrap().call_id, None);
}

#[test]
fn pause_asked_during_a_call_takes_effect_when_the_call_ends() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    s.talking(A, C1);
    s.input(A, Input::Pause { reason_id: LUNCH }).unwrap();
    assert_eq!(s.state(A), AgentState::Talking);
    assert_eq!(
        s.floor.agent(A).unwrap().pending,
        Some(Pending::Pause { reason_id: LUNCH, cause: Cause::PauseRequested })
    );
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::WrapUp);
    // Asked again during ACW: still deferred, last request wins.
    s.input(A, Input::Pause { reason_id: AWAY }).unwrap();
    assert_eq!(s.state(A), AgentState::WrapUp);
    s.advance(30_000);
    assert_eq!(s.state(A), AgentState::Paused { reason_id: AWAY });
    assert_eq!(s.last(A).cause, Cause::PauseRequested);
}

#[test]
fn log_off_asked_during_hold_takes_effect_when_the_call_ends() {
    let mut s = Sim::new(&[A]);
    s.ready(A, AgentConfig::default());
    s.talking(A, C1);
    s.input(A, Input::Hold { call_id: C1 }).unwrap();
    s.input(A, Input::LogOff).unwrap();
    assert_eq!(s.state(A), AgentState::Hold);
    assert!(!s.commands().contains(&Command::HangUpAgentLeg { agent_id: A }));
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::Offline);
    assert_eq!(s.last(A).cause, Cause::LogOffRequested);
    assert!(s.commands().contains(&Command::HangUpAgentLeg { agent_id: A }));
}

#[test]
fn pause_and_log_off_outside_a_call_are_immediate() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    s.input(A, Input::Pause { reason_id: LUNCH }).unwrap();
    assert_eq!(s.state(A), AgentState::Paused { reason_id: LUNCH });
    s.input(A, Input::GoReady).unwrap();
    assert_eq!(s.state(A), AgentState::Ready);
    s.input(A, Input::LogOff).unwrap();
    assert_eq!(s.state(A), AgentState::Offline);
    assert!(matches!(s.input(A, Input::LogOff), Err(AgentError::NotAllowed { .. })));
}

#[test]
fn idle_sixty_minutes_in_ready_logs_off() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    let t0 = s.now;
    s.advance(59 * MIN);
    assert_eq!(s.state(A), AgentState::Ready);
    s.advance(MIN);
    assert_eq!(s.state(A), AgentState::Offline);
    let t = s.last(A);
    assert_eq!((t.cause, t.at_ms), (Cause::IdleTimeout, t0 + 60 * MIN));
}

#[test]
fn activity_restarts_the_idle_timer() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    s.advance(50 * MIN);
    s.input(A, Input::Activity).unwrap();
    s.advance(50 * MIN);
    assert_eq!(s.state(A), AgentState::Ready);
    s.advance(10 * MIN);
    assert_eq!(s.state(A), AgentState::Offline);
}

#[test]
fn idle_in_paused_and_in_long_acw_logs_off() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, acw(30));
    s.input(A, Input::Pause { reason_id: LUNCH }).unwrap();
    s.ready(B, acw(2 * 3600));
    s.talking(B, C1);
    s.input(B, Input::CustomerEnded { call_id: C1 }).unwrap();
    s.advance(60 * MIN);
    assert_eq!(s.state(A), AgentState::Offline);
    assert_eq!(s.state(B), AgentState::Offline);
    assert_eq!(s.last(B).cause, Cause::IdleTimeout);
    // Talking is never idle.
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    s.talking(A, C1);
    s.advance(3 * 60 * MIN);
    assert_eq!(s.state(A), AgentState::Talking);
}

#[test]
fn supervisor_forces_with_their_id_as_cause() {
    let sv = SupervisorId(9);
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(300));
    s.input(A, Input::Pause { reason_id: LUNCH }).unwrap();
    s.input(A, Input::Force { supervisor_id: sv, to: ForceTarget::Ready }).unwrap();
    assert_eq!(s.state(A), AgentState::Ready);
    assert_eq!(s.last(A).cause, Cause::Supervisor { supervisor_id: sv });
    // Out of ACW at once.
    s.talking(A, C1);
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    s.input(A, Input::Force { supervisor_id: sv, to: ForceTarget::Paused { reason_id: AWAY } }).unwrap();
    assert_eq!(s.state(A), AgentState::Paused { reason_id: AWAY });
    // Forced log-off during a call waits for the call's end.
    s.input(A, Input::GoReady).unwrap();
    s.talking(A, C2);
    s.input(A, Input::Force { supervisor_id: sv, to: ForceTarget::Offline }).unwrap();
    assert_eq!(s.state(A), AgentState::Talking);
    // The agent's own go-ready does not cancel the supervisor's request.
    s.input(A, Input::GoReady).unwrap();
    s.input(A, Input::CustomerEnded { call_id: C2 }).unwrap();
    s.input(A, Input::WrapUpSaved { call_id: C2, after: AfterWrapUp::Continue }).unwrap();
    assert_eq!(s.state(A), AgentState::Offline);
    assert_eq!(s.last(A).cause, Cause::Supervisor { supervisor_id: sv });
    // Ready cannot be forced on an agent without a phone leg.
    assert!(matches!(
        s.input(A, Input::Force { supervisor_id: sv, to: ForceTarget::Ready }),
        Err(AgentError::NotAllowed { .. })
    ));
}

#[test]
fn offer_not_taken_is_released_and_the_agent_auto_paused() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, AgentConfig { no_answer_pause: Some(NO_ANSWER), ..acw(30) });
    s.input(A, Input::Offer { call_id: C1 }).unwrap();
    s.advance(20_000);
    assert_eq!(s.state(A), AgentState::Paused { reason_id: NO_ANSWER });
    assert_eq!(s.last(A).cause, Cause::NoAnswer);
    assert!(s.commands().contains(&Command::ReleaseCustomer { agent_id: A, call_id: C1 }));
    assert_eq!(s.floor.call_owner(C1), None);
    // Without auto-pause: back to ready; and the released customer can go to another agent.
    s.ready(B, acw(30));
    s.input(B, Input::Offer { call_id: C1 }).unwrap();
    s.advance(20_000);
    assert_eq!(s.state(B), AgentState::Ready);
}

/// 無応答自動停止時間 (cloudcallcenter-manual.txt §11.2): the pause for an offer not taken ends by
/// itself after the group's time, also across a restart of control; a pause ended sooner by hand
/// leaves nothing behind.
#[test]
fn the_no_answer_pause_ends_by_itself_after_the_release_time() {
    let cfg = AgentConfig { no_answer_pause: Some(NO_ANSWER), no_answer_release_ms: Some(90_000), ..acw(30) };
    let mut s = Sim::new(&[A, B]);
    s.ready(A, cfg);
    s.input(A, Input::Offer { call_id: C1 }).unwrap();
    s.advance(20_000);
    assert_eq!(s.state(A), AgentState::Paused { reason_id: NO_ANSWER });
    let view = s.floor.agent(A).unwrap();
    assert_eq!(view.release_at_ms, Some(s.now + 90_000));
    s.advance(89_999);
    assert_eq!(s.state(A), AgentState::Paused { reason_id: NO_ANSWER });
    s.advance(1);
    assert_eq!(s.state(A), AgentState::Ready);
    assert_eq!(s.last(A).cause, Cause::PauseReleased);
    assert_eq!(s.floor.agent(A).unwrap().release_at_ms, None);

    // Restored from its stored view (control restarted), the pause still ends on time.
    s.input(A, Input::Offer { call_id: C2 }).unwrap();
    s.advance(20_000);
    let stored = s.floor.agent(A).unwrap();
    let mut restarted = Sim::new(&[A]);
    restarted.now = s.now;
    restarted.floor.restore(stored, cfg).unwrap();
    restarted.advance(90_000);
    assert_eq!(restarted.state(A), AgentState::Ready);
    assert_eq!(restarted.last(A).cause, Cause::PauseReleased);

    // Ended by hand first: no release fires later; without a release time the pause stays.
    s.input(A, Input::GoReady).unwrap();
    s.input(A, Input::Pause { reason_id: LUNCH }).unwrap();
    s.advance(120_000);
    assert_eq!(s.state(A), AgentState::Paused { reason_id: LUNCH });
    s.ready(B, AgentConfig { no_answer_pause: Some(NO_ANSWER), ..acw(30) });
    s.input(B, Input::Offer { call_id: C3 }).unwrap();
    s.advance(20_000 + 1_800_000);
    assert_eq!(s.state(B), AgentState::Paused { reason_id: NO_ANSWER });
}

#[test]
fn decline_and_abandon_before_bridge() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    s.input(A, Input::Offer { call_id: C1 }).unwrap();
    s.input(A, Input::Decline { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::Ready);
    assert_eq!(s.last(A).cause, Cause::Declined);
    assert!(s.commands().contains(&Command::ReleaseCustomer { agent_id: A, call_id: C1 }));
    s.input(A, Input::Offer { call_id: C2 }).unwrap();
    s.input(A, Input::CustomerEnded { call_id: C2 }).unwrap();
    assert_eq!(s.state(A), AgentState::Ready, "no ACW without a conversation");
}

#[test]
fn phone_unreachable_in_a_call_hangs_up_the_customer() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, acw(30));
    s.talking(A, C1);
    s.input(A, Input::Pause { reason_id: LUNCH }).unwrap();
    s.input(A, Input::PhoneUnreachable).unwrap();
    assert_eq!(s.state(A), AgentState::Unknown);
    assert!(s.commands().contains(&Command::HangUpCustomer { agent_id: A, call_id: C1 }));
    let v = s.floor.agent(A).unwrap();
    assert_eq!((v.call_id, v.pending, v.leg_up), (None, None, false));
    // Leg down in ready: unknown too, no commands needed.
    s.ready(B, acw(30));
    s.input(B, Input::AgentLegDown).unwrap();
    assert_eq!(s.state(B), AgentState::Unknown);
    assert_eq!(s.last(B).cause, Cause::AgentLegDown);
    // Unknown is left when a leg comes up (a dialer host that took the campaign over set it up
    // again) ...
    s.input(B, Input::AgentLegUp).unwrap();
    assert_eq!(s.state(B), AgentState::Ready);
    assert_eq!(s.last(B).cause, Cause::AgentLegUp);
    s.input(B, Input::AgentLegDown).unwrap();
    assert_eq!(s.state(B), AgentState::Unknown);
    // ... or by log-off.
    s.input(B, Input::LogOff).unwrap();
    assert_eq!(s.state(B), AgentState::Offline);
}

#[test]
fn bad_input_is_an_error_and_changes_nothing() {
    let mut s = Sim::new(&[A]);
    assert_eq!(s.input(AgentId(77), Input::GoReady), Err(AgentError::UnknownAgent(AgentId(77))));
    assert!(matches!(s.input(A, Input::GoReady), Err(AgentError::NotAllowed { .. })));
    assert!(matches!(s.input(A, Input::AgentLegUp), Err(AgentError::NotAllowed { .. })));
    let bad = AgentConfig { idle_logoff_ms: 0, ..AgentConfig::default() };
    assert!(matches!(s.input(A, Input::Login { config: bad }), Err(AgentError::InvalidConfig(_))));
    s.ready(A, acw(30));
    let n = s.events.len();
    assert_eq!(
        s.input(A, Input::Pause { reason_id: PauseReasonId(99) }),
        Err(AgentError::UnknownPauseReason(PauseReasonId(99)))
    );
    assert!(matches!(s.input(A, Input::Bridged { call_id: C1 }), Err(AgentError::NotAllowed { .. })));
    assert_eq!(s.events.len(), n);
    assert_eq!(s.floor.add_agent(A), Err(AgentError::AgentExists(A)));
    assert_eq!(s.floor.remove_agent(A), Err(AgentError::NotOffline(AgentState::Ready)));
}

#[test]
fn a_full_event_queue_refuses_input() {
    let mut f = Floor::new(FloorLimits { max_agents: 2, max_events: 7 }, [LUNCH]);
    f.add_agent(A).unwrap();
    f.add_agent(B).unwrap();
    assert_eq!(f.add_agent(AgentId(3)), Err(AgentError::TooManyAgents(2)));
    f.handle_input(0, A, Input::Login { config: AgentConfig::default() }).unwrap();
    f.handle_input(0, B, Input::Login { config: AgentConfig::default() }).unwrap();
    assert_eq!(f.handle_input(0, A, Input::AgentLegUp), Err(AgentError::QueueFull));
    while f.poll_event().is_some() {}
    f.handle_input(0, A, Input::AgentLegUp).unwrap();
}

#[test]
fn timer_heap_stays_bounded_under_many_rearms() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    for _ in 0..100_000 {
        s.now += 1;
        s.input(A, Input::Activity).unwrap();
    }
    // Only the last deadline fires.
    assert_eq!(s.floor.poll_timeout(), Some(s.now + 60 * MIN));
    s.advance(60 * MIN);
    assert_eq!(s.state(A), AgentState::Offline);
}

// ---------------------------------------------------------------- preview (プレビュー)

const CAMPAIGN: wire::CampaignId = wire::CampaignId(7);
const JOB: wire::CallJobId = wire::CallJobId(70);
const LEAD: wire::LeadId = wire::LeadId(700);

fn preview_dial() -> Input {
    Input::PreviewDial { campaign_id: CAMPAIGN, call_job_id: JOB, lead_id: LEAD, caller_id: None }
}

#[test]
fn preview_dial_holds_the_agent_then_bridges_the_answer_to_them() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, acw(30));
    s.advance(10);
    s.ready(B, acw(30));
    s.input(A, preview_dial()).unwrap();
    let t = s.last(A);
    assert_eq!((t.from, t.to, t.cause, t.call_id), (AgentState::Ready, AgentState::Ringing, Cause::PreviewDial, None));
    assert!(s.commands().contains(&Command::DialPreview {
        agent_id: A,
        campaign_id: CAMPAIGN,
        call_job_id: JOB,
        lead_id: LEAD,
        caller_id: None
    }));
    assert!(s.floor.agent(A).unwrap().dialling);
    // While A's own call is being placed, no other customer goes to A: B (idle shorter) gets it.
    assert_eq!(s.floor.ready_agents().collect::<Vec<_>>(), vec![B]);
    assert_eq!(
        s.input(A, Input::Offer { call_id: C2 }),
        Err(AgentError::OfferRefused(OfferRefused::NotReady { state: AgentState::Ringing }))
    );
    assert_eq!(s.floor.offer_to_longest_ready(s.now, C2), Ok(B));
    s.drain();
    // The dialer placed it: A holds the call, nobody else can be offered it.
    s.advance(300);
    s.input(A, Input::PreviewPlaced { call_id: C1 }).unwrap();
    assert_eq!(s.floor.call_owner(C1), Some(A));
    assert_eq!(s.floor.agent(A).unwrap().call_id, Some(C1));
    // Rings 25 s (longer than the 20 s offer timeout: a preview call's own limit applies).
    s.advance(25_000);
    assert_eq!(s.state(A), AgentState::Ringing);
    let bridges = |s: &Sim| s.commands().iter().filter(|c| matches!(c, Command::Bridge { agent_id: A, .. })).count();
    assert_eq!(bridges(&s), 0);
    s.input(A, Input::PreviewAnswered { call_id: C1 }).unwrap();
    assert_eq!(bridges(&s), 1);
    assert!(s.commands().contains(&Command::Bridge { agent_id: A, call_id: C1 }));
    s.input(A, Input::Bridged { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::Talking);
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::WrapUp, "a preview conversation has its ACW like any other");
}

#[test]
fn preview_not_dialled_or_not_answered_gives_the_agent_back() {
    let mut s = Sim::new(&[A]);
    s.ready(A, acw(30));
    // Not placed (do-not-call, a channel limit, ...): ready again, cause not_dialled.
    s.input(A, preview_dial()).unwrap();
    s.input(A, Input::PreviewNotDialled).unwrap();
    assert_eq!((s.state(A), s.last(A).cause), (AgentState::Ready, Cause::NotDialled));
    // Placed but never answered (busy, ring timeout): ready again, no ACW.
    s.input(A, preview_dial()).unwrap();
    s.input(A, Input::PreviewPlaced { call_id: C1 }).unwrap();
    s.input(A, Input::CustomerEnded { call_id: C1 }).unwrap();
    assert_eq!((s.state(A), s.last(A).cause), (AgentState::Ready, Cause::CustomerEnded));
    assert_eq!(s.floor.call_owner(C1), None);
    // A pause asked for while the preview call rings waits for its end.
    s.input(A, preview_dial()).unwrap();
    s.input(A, Input::Pause { reason_id: LUNCH }).unwrap();
    assert_eq!(s.state(A), AgentState::Ringing);
    s.input(A, Input::PreviewNotDialled).unwrap();
    assert_eq!(s.state(A), AgentState::Paused { reason_id: LUNCH });
    // Preview only from ready; the events of a preview call are refused outside one.
    assert!(matches!(s.input(A, preview_dial()), Err(AgentError::NotAllowed { .. })));
    assert!(matches!(s.input(A, Input::PreviewPlaced { call_id: C2 }), Err(AgentError::NotAllowed { .. })));
    assert!(matches!(s.input(A, Input::PreviewAnswered { call_id: C2 }), Err(AgentError::NotAllowed { .. })));
}

#[test]
fn preview_call_past_its_timeout_is_hung_up() {
    let mut s = Sim::new(&[A, B]);
    let cfg = AgentConfig { preview_timeout_ms: 40_000, ..acw(30) };
    s.ready(A, cfg);
    s.input(A, preview_dial()).unwrap();
    s.input(A, Input::PreviewPlaced { call_id: C1 }).unwrap();
    s.advance(39_999);
    assert_eq!(s.state(A), AgentState::Ringing);
    s.advance(1);
    assert_eq!((s.state(A), s.last(A).cause), (AgentState::Ready, Cause::NoAnswer));
    assert!(s.commands().contains(&Command::HangUpCustomer { agent_id: A, call_id: C1 }));
    assert!(!s.commands().iter().any(|c| matches!(c, Command::ReleaseCustomer { .. })));
    assert_eq!(s.floor.call_owner(C1), None);
    // The dialer's late answer for a call nobody holds is refused (control then hangs it up).
    assert!(s.input(A, Input::PreviewPlaced { call_id: C2 }).is_err());
    // The agent's phone lost while the preview call rings: the call ends with a hang-up, not a
    // release to another agent.
    s.ready(B, cfg);
    s.input(B, preview_dial()).unwrap();
    s.input(B, Input::PreviewPlaced { call_id: C2 }).unwrap();
    s.input(B, Input::PhoneUnreachable).unwrap();
    assert_eq!(s.state(B), AgentState::Unknown);
    assert!(s.commands().contains(&Command::HangUpCustomer { agent_id: B, call_id: C2 }));
    assert!(!s.commands().iter().any(|c| matches!(c, Command::ReleaseCustomer { .. })));
}

#[test]
fn preview_state_survives_a_restore() {
    let mut s = Sim::new(&[A]);
    let cfg = AgentConfig { preview_timeout_ms: 40_000, ..acw(30) };
    s.ready(A, cfg);
    s.input(A, preview_dial()).unwrap();
    s.input(A, Input::PreviewPlaced { call_id: C1 }).unwrap();
    let view = s.floor.agent(A).unwrap();
    // The view as control stores it (JSON, the wire's), read back by a restarted control service.
    let json = serde_json::to_string(&wire::agent::AgentView::from(view)).unwrap();
    let back: wire::agent::AgentView = serde_json::from_str(&json).unwrap();
    let back = control::agent::AgentView::from(back);
    assert_eq!(back, view);
    let mut r = Sim::new(&[]);
    r.now = s.now;
    r.floor.restore(back, cfg).unwrap();
    assert_eq!(r.floor.call_owner(C1), Some(A));
    r.input(A, Input::PreviewAnswered { call_id: C1 }).unwrap();
    assert!(r.commands().contains(&Command::Bridge { agent_id: A, call_id: C1 }));
}
