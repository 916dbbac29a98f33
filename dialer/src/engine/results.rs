//! How a call's end becomes its system result (SPEC 4), and what the pacer learns from it. This is
//! the one place a SIP outcome becomes a result: the dialer writes it on the call record and sends
//! it to control on `call_ended`; nothing else derives one.
//!
//! | how the call ended | SIP | result |
//! |---|---|---|
//! | answered, bridged to an agent, then hung up by either side | 200 | `no_entry` (未入力) until a wrap-up record is saved |
//! | answered, no agent within the wait limit (or the customer hung up while waiting) | 200 | `abandoned` (破棄呼) |
//! | busy | 486, 600 | `busy` (ビジー) |
//! | declined by the callee | 603 | `cancel` (キャンセル, SPEC 4: the callee rejecting the call) |
//! | our CANCEL at the ring timeout, or the carrier's own no-answer | 487 after our CANCEL, 408, 480 | `timeout` (制限時間) |
//! | cancelled by the carrier (not by us) | 487 | `cancel` (キャンセル) |
//! | our CANCEL because the dialer stopped | 487 | `stopped` (停止) |
//! | number not in service | 404, 410, 484, 604 | `not_in_service` (現アナ: a call, not a connect) |
//! | refused, server failure, any other final | 401/403/407 after our one authenticated retry, 4xx, 5xx, 6xx | `error` |
//! | no response at all (timer B), unusable SDP, no RTP port, shard full | - | `error` |
//! | prepared (its record written) as the dialer stopped: not dialled, its attempt taken back, its recall open again | - | `stopped` |
//! | on the do-not-call list | not dialled | `restricted` (発信規制) |
//! | a caller ID's channel limit reached | not dialled | `channel_limit` (チャンネル制限) |
//! | preview: the campaign's or the caller ID's channel limit reached when the agent dials | not dialled | `channel_limit` |
//! | preview: the number already in a call, outside business hours, the job not running, the lead no longer dialable | not dialled | none (no record; the agent is ready again) |
//! | the dialer process died with the call | - | `error` (set when it restarts) |

use wire::SystemResult;

use crate::calls::{CallEnd, CancelReason, EndCause};
use crate::pacer::PacerEvent;

/// The system result of a call's end (see the module table).
pub fn result_of(end: &CallEnd) -> SystemResult {
    match end.cause {
        EndCause::Completed => SystemResult::NoEntry,
        EndCause::Abandoned => SystemResult::Abandoned,
        EndCause::Cancelled(CancelReason::RingTimeout) => SystemResult::Timeout,
        EndCause::Cancelled(CancelReason::Stopped) => SystemResult::Stopped,
        EndCause::Cancelled(CancelReason::HungUp) => SystemResult::Cancel,
        EndCause::Rejected => match end.status {
            486 | 600 => SystemResult::Busy,
            603 | 487 => SystemResult::Cancel,
            408 | 480 => SystemResult::Timeout,
            404 | 410 | 484 | 604 => SystemResult::NotInService,
            _ => SystemResult::Error,
        },
        EndCause::Transport | EndCause::Media | EndCause::Capacity => SystemResult::Error,
    }
}

/// What the pacer learns from a call's end (the answer and the connection were reported as they
/// happened).
pub fn pacer_event(end: &CallEnd) -> Option<PacerEvent> {
    if end.answered {
        return (end.cause == EndCause::Abandoned && end.agent.is_none()).then_some(PacerEvent::Abandoned);
    }
    match end.cause {
        EndCause::Cancelled(CancelReason::RingTimeout) => Some(PacerEvent::RangOut { after_ms: end.ring_ms }),
        EndCause::Rejected if matches!(end.status, 408 | 480) => Some(PacerEvent::RangOut { after_ms: end.ring_ms }),
        EndCause::Rejected | EndCause::Transport | EndCause::Media => {
            Some(PacerEvent::Failed { after_ms: end.ring_ms })
        }
        // Not a call the carrier saw (capacity) or one we stopped: nothing to learn.
        EndCause::Capacity | EndCause::Cancelled(_) => None,
        EndCause::Completed | EndCause::Abandoned => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Party;

    fn end(status: u16, cause: EndCause, answered: bool, agent: Option<u64>) -> CallEnd {
        CallEnd {
            status,
            reason: String::new(),
            cause,
            ended_by: Party::Customer,
            answered,
            agent,
            ring_ms: 5_000,
            wait_ms: 0,
            talk_ms: 0,
        }
    }

    #[test]
    fn the_whole_table() {
        let cases = [
            (end(200, EndCause::Completed, true, Some(1)), "no_entry"),
            (end(200, EndCause::Abandoned, true, None), "abandoned"),
            (end(486, EndCause::Rejected, false, None), "busy"),
            (end(600, EndCause::Rejected, false, None), "busy"),
            (end(603, EndCause::Rejected, false, None), "cancel"),
            (end(487, EndCause::Cancelled(CancelReason::RingTimeout), false, None), "timeout"),
            (end(480, EndCause::Rejected, false, None), "timeout"),
            (end(408, EndCause::Rejected, false, None), "timeout"),
            (end(487, EndCause::Rejected, false, None), "cancel"),
            (end(487, EndCause::Cancelled(CancelReason::Stopped), false, None), "stopped"),
            (end(404, EndCause::Rejected, false, None), "not_in_service"),
            (end(410, EndCause::Rejected, false, None), "not_in_service"),
            (end(484, EndCause::Rejected, false, None), "not_in_service"),
            (end(604, EndCause::Rejected, false, None), "not_in_service"),
            (end(503, EndCause::Rejected, false, None), "error"),
            (end(403, EndCause::Rejected, false, None), "error"),
            (end(408, EndCause::Transport, false, None), "error"),
            (end(0, EndCause::Capacity, false, None), "error"),
        ];
        for (e, want) in cases {
            assert_eq!(result_of(&e).as_str(), want, "{e:?}");
        }
    }

    #[test]
    fn what_the_pacer_learns() {
        assert_eq!(
            pacer_event(&end(486, EndCause::Rejected, false, None)),
            Some(PacerEvent::Failed { after_ms: 5_000 })
        );
        assert_eq!(
            pacer_event(&end(487, EndCause::Cancelled(CancelReason::RingTimeout), false, None)),
            Some(PacerEvent::RangOut { after_ms: 5_000 })
        );
        assert_eq!(pacer_event(&end(200, EndCause::Abandoned, true, None)), Some(PacerEvent::Abandoned));
        assert_eq!(pacer_event(&end(200, EndCause::Completed, true, Some(3))), None);
        assert_eq!(pacer_event(&end(0, EndCause::Capacity, false, None)), None);
    }
}
