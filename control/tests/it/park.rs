//! パーク保留 under virtual time: the agent's side (park: to wrap-up as after a transfer, the
//! customer waits; pick-up: any ready agent is offered the same call) and the tenant's park numbers
//! (lowest free, bounded, returned at the limit).

use control::agent::parking::{ParkError, Parking, FIRST_PARK_NUMBER, LAST_PARK_NUMBER, MAX_PARKED};
use control::agent::{AgentConfig, AgentError, AgentId, AgentState, CallId, Cause, Command, Input};

use crate::agent::{acw, Sim};

const A: AgentId = AgentId(1);
const B: AgentId = AgentId(2);
const C1: CallId = CallId(100);
const C2: CallId = CallId(101);
const MIN: u64 = 60_000;

#[test]
fn a_parked_call_frees_its_agent_and_is_picked_up_by_a_ready_colleague() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, acw(30));
    s.ready(B, AgentConfig::default());
    // Only the agent's own call, only while talking or on hold.
    assert!(matches!(s.input(B, Input::Park { call_id: C1 }), Err(AgentError::NotAllowed { .. })));
    s.talking(A, C1);
    assert!(matches!(s.input(A, Input::Park { call_id: C2 }), Err(AgentError::WrongCall { .. })));
    s.input(A, Input::Park { call_id: C1 }).unwrap();
    assert_eq!(s.state(A), AgentState::WrapUp, "the agent wraps up its part");
    assert_eq!(s.last(A).cause, Cause::Parked);
    assert_eq!(s.last(A).call_id, Some(C1));
    assert!(s.commands().contains(&Command::ParkCustomer { agent_id: A, call_id: C1, hold_ms: 0 }));
    assert!(
        !s.commands().iter().any(|c| matches!(c, Command::ReleaseCustomer { .. })),
        "a parked customer is not put back in the queue"
    );
    assert_eq!(s.floor.call_owner(C1), None);
    // B picks it up: offered (its phone's leg bridged), then talking with the same call.
    s.input(B, Input::Offer { call_id: C1 }).unwrap();
    assert!(s.commands().contains(&Command::Bridge { agent_id: B, call_id: C1 }));
    s.input(B, Input::Bridged { call_id: C1 }).unwrap();
    assert_eq!((s.state(B), s.floor.call_owner(C1)), (AgentState::Talking, Some(B)));
    // A's wrap-up runs its course (30 s of ACW) untouched by B's call.
    s.advance(30_000);
    assert_eq!(s.state(A), AgentState::Ready);
    assert_eq!(s.state(B), AgentState::Talking);
}

#[test]
fn a_parked_call_may_be_parked_again_by_whoever_picked_it_up() {
    let mut s = Sim::new(&[A, B]);
    s.ready(A, AgentConfig::default());
    s.ready(B, AgentConfig::default());
    s.talking(A, C1);
    s.input(A, Input::Hold { call_id: C1 }).unwrap();
    s.input(A, Input::Park { call_id: C1 }).unwrap();
    // No ACW: straight back to ready.
    assert_eq!(s.state(A), AgentState::Ready);
    s.talking(B, C1);
    s.input(B, Input::Park { call_id: C1 }).unwrap();
    // A (the one who parked it first) takes it back.
    s.talking(A, C1);
    assert_eq!(s.floor.call_owner(C1), Some(A));
}

#[test]
fn park_numbers_are_the_lowest_free_and_bounded() {
    let mut p = Parking::new(5 * MIN);
    let t0 = 1_000_000;
    assert_eq!(p.park(t0, CallId(1), A), Ok(FIRST_PARK_NUMBER));
    assert_eq!(p.park(t0, CallId(2), A), Ok(9002));
    assert_eq!(p.park(t0, CallId(3), B), Ok(9003));
    assert_eq!(p.park(t0, CallId(2), B), Err(ParkError::AlreadyParked(9002)));
    // 9002 picked up: the next park takes it again.
    assert_eq!(p.take(9002).map(|x| x.call_id), Some(CallId(2)));
    assert_eq!(p.take(9002), None, "one pick-up only");
    assert_eq!(p.park(t0, CallId(4), B), Ok(9002));
    // The customer of 9001 hangs up.
    assert_eq!(p.take_call(CallId(1)).map(|(n, _)| n), Some(9001));
    assert_eq!(p.next_number(), Some(9001));
    for c in 10..(10 + MAX_PARKED as u64) {
        let _ = p.park(t0, CallId(c), A);
    }
    assert_eq!(p.len(), MAX_PARKED);
    assert_eq!(p.iter().map(|(n, _)| n).max(), Some(LAST_PARK_NUMBER));
    assert_eq!(p.park(t0, CallId(999), A), Err(ParkError::Full));
}

#[test]
fn parks_reach_the_limit_in_order_under_virtual_time() {
    let mut p = Parking::new(5 * MIN);
    let t0 = 1_000_000;
    assert_eq!(p.poll_timeout(), None);
    p.park(t0, C1, A).unwrap();
    p.park(t0 + MIN, C2, B).unwrap();
    assert_eq!(p.poll_timeout(), Some(t0 + 5 * MIN));
    assert!(p.due(t0 + 5 * MIN - 1).is_empty());
    let due = p.due(t0 + 5 * MIN);
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].0, due[0].1.call_id, due[0].1.by), (9001, C1, A));
    assert_eq!(p.poll_timeout(), Some(t0 + 6 * MIN));
    let due = p.due(t0 + 10 * MIN);
    assert_eq!(due.iter().map(|(n, x)| (*n, x.call_id)).collect::<Vec<_>>(), vec![(9002, C2)]);
    assert!(p.is_empty());
    // A restarted service keeps the parks it had (numbers out of range dropped).
    let mut q = Parking::new(5 * MIN);
    let kept = control::agent::parking::ParkedCall { call_id: C1, by: A, at_ms: t0 };
    q.restore([(9005, kept), (42, kept)]);
    assert_eq!(q.iter().map(|(n, _)| n).collect::<Vec<_>>(), vec![9005]);
    assert_eq!(q.park(t0, C2, B), Ok(9001));
}
