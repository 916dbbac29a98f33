//! How the dialer reads the end of an outbound INVITE: one [`Outcome`] per client transaction, mapped
//! onto the system results of SPEC 4 by the dialer.

use crate::transaction::Event;

/// The end of a customer call attempt as far as SIP can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: answered (the dialog is confirmed; ACK it).
    Answered,
    /// 486, 600: busy (ビジー).
    Busy,
    /// 603: declined by the callee; the dialer treats it as busy or no-connect by campaign policy.
    Declined,
    /// 404, 484, 604: number not in service (現アナ).
    NotInService,
    /// 408, 480, timer B: nobody answered in time (制限時間).
    NoAnswer,
    /// 487 after our CANCEL (ring timeout or stop: 制限時間 / キャンセル / 停止, the dialer knows which).
    Cancelled,
    /// 401/407 that still fail after one authenticated retry, 403.
    Rejected,
    /// 503 and any other failure (エラー).
    Failed(u16),
}

/// Classifies a final status of an INVITE.
pub fn classify(status: u16) -> Option<Outcome> {
    Some(match status {
        0..=199 => return None,
        200..=299 => Outcome::Answered,
        486 | 600 => Outcome::Busy,
        603 => Outcome::Declined,
        404 | 484 | 604 => Outcome::NotInService,
        408 | 480 => Outcome::NoAnswer,
        487 => Outcome::Cancelled,
        401 | 403 | 407 => Outcome::Rejected,
        s => Outcome::Failed(s),
    })
}

/// The outcome an endpoint event gives for a client INVITE, if final.
pub fn from_event(e: &Event) -> Option<Outcome> {
    match e {
        Event::Response { response, .. } => classify(response.status),
        Event::Timeout { .. } => Some(Outcome::NoAnswer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(180), None);
        assert_eq!(classify(200), Some(Outcome::Answered));
        assert_eq!(classify(486), Some(Outcome::Busy));
        assert_eq!(classify(404), Some(Outcome::NotInService));
        assert_eq!(classify(487), Some(Outcome::Cancelled));
        assert_eq!(classify(503), Some(Outcome::Failed(503)));
    }
}
