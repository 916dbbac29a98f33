//! パーク保留: a tenant's parked calls, sans-IO. A call parked by its agent waits under a park
//! number (保留番号: the lowest free of [`FIRST_PARK_NUMBER`]..=[`LAST_PARK_NUMBER`]) until an agent
//! picks it up, its customer hangs up, or the park limit passes ([`Parking::due`]: the control
//! service then returns it, to the agent who parked it if ready, else to its campaign's queue).
//! Time is the driver's `now_ms`; at most [`MAX_PARKED`] calls are parked at once.

use std::collections::BTreeMap;

use super::{AgentId, CallId};

/// The first and last park numbers; so at most 99 calls are parked at once per tenant.
pub const FIRST_PARK_NUMBER: u16 = 9001;
pub const LAST_PARK_NUMBER: u16 = 9099;
pub const MAX_PARKED: usize = (LAST_PARK_NUMBER - FIRST_PARK_NUMBER + 1) as usize;

/// A parked call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkedCall {
    pub call_id: CallId,
    /// Who parked it.
    pub by: AgentId,
    pub at_ms: u64,
}

/// Why a call could not be parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParkError {
    #[error("every park number is in use")]
    Full,
    #[error("the call is parked already (number {0})")]
    AlreadyParked(u16),
}

/// The tenant's parked calls by number, and the park limit.
#[derive(Debug, Clone)]
pub struct Parking {
    limit_ms: u64,
    parked: BTreeMap<u16, ParkedCall>,
}

impl Parking {
    pub fn new(limit_ms: u64) -> Parking {
        Parking { limit_ms, parked: BTreeMap::new() }
    }

    /// Parks as they were (a restarted service): numbers out of the range, or beyond the bound, are
    /// dropped.
    pub fn restore(&mut self, parks: impl IntoIterator<Item = (u16, ParkedCall)>) {
        for (n, p) in parks {
            if (FIRST_PARK_NUMBER..=LAST_PARK_NUMBER).contains(&n) {
                self.parked.insert(n, p);
            }
        }
    }

    /// The number the next park would get, if any is free.
    pub fn next_number(&self) -> Option<u16> {
        (FIRST_PARK_NUMBER..=LAST_PARK_NUMBER).find(|n| !self.parked.contains_key(n))
    }

    /// Parks `call_id` under the lowest free number.
    pub fn park(&mut self, now_ms: u64, call_id: CallId, by: AgentId) -> Result<u16, ParkError> {
        if let Some(n) = self.number_of(call_id) {
            return Err(ParkError::AlreadyParked(n));
        }
        let n = self.next_number().ok_or(ParkError::Full)?;
        self.parked.insert(n, ParkedCall { call_id, by, at_ms: now_ms });
        Ok(n)
    }

    pub fn get(&self, number: u16) -> Option<ParkedCall> {
        self.parked.get(&number).copied()
    }

    /// The park of `number` ends (picked up): what was parked there.
    pub fn take(&mut self, number: u16) -> Option<ParkedCall> {
        self.parked.remove(&number)
    }

    pub fn number_of(&self, call_id: CallId) -> Option<u16> {
        self.parked.iter().find(|(_, p)| p.call_id == call_id).map(|(n, _)| *n)
    }

    /// The park of `call_id` ends (its customer hung up): its number and park.
    pub fn take_call(&mut self, call_id: CallId) -> Option<(u16, ParkedCall)> {
        let n = self.number_of(call_id)?;
        self.parked.remove(&n).map(|p| (n, p))
    }

    /// When the earliest park reaches the limit.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.parked.values().map(|p| p.at_ms.saturating_add(self.limit_ms)).min()
    }

    /// Takes the parks that reached the limit at `now_ms`, by number.
    pub fn due(&mut self, now_ms: u64) -> Vec<(u16, ParkedCall)> {
        let limit = self.limit_ms;
        let due: Vec<u16> =
            self.parked.iter().filter(|(_, p)| p.at_ms.saturating_add(limit) <= now_ms).map(|(n, _)| *n).collect();
        due.into_iter().filter_map(|n| self.parked.remove(&n).map(|p| (n, p))).collect()
    }

    pub fn len(&self) -> usize {
        self.parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u16, ParkedCall)> + '_ {
        self.parked.iter().map(|(n, p)| (*n, *p))
    }
}
