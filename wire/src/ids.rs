//! The ids that cross processes: newtypes over the numbers SQL and the bus carry (a JSON number
//! each, `#[serde(transparent)]`), so that an agent is never mistaken for a call or a campaign.

use serde::{Deserialize, Serialize};

/// An agent (operator) of the tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(pub u64);

/// A supervisor (SV) user, recorded as the cause of forced changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SupervisorId(pub u64);

/// A customer call, numbered by the dialer (unique per tenant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub u64);

/// A tenant-defined pause reason (lunch, away, training, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PauseReasonId(pub u32);

/// A campaign (キャンペーン).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignId(pub u64);

/// A call job (コールジョブ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallJobId(pub u64);

/// A dialing group (発信グループ): the agents a call job dials for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DialingGroupId(pub u64);

/// A lead (a row of a call list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeadId(pub u64);

/// A caller ID (発番号): a row of the tenant's caller IDs, by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallerIdId(pub u64);

/// A telephone number as the dialer dials it (digits only, at most [`Tel::MAX`]), kept inline so
/// that the commands carrying it stay `Copy`; a JSON string on the bus.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tel {
    len: u8,
    digits: [u8; Tel::MAX],
}

impl Tel {
    /// The most digits a number has (the lead CSV's rule).
    pub const MAX: usize = 30;

    /// `None` unless `s` is 1 to [`Tel::MAX`] ASCII digits.
    pub fn new(s: &str) -> Option<Tel> {
        if s.is_empty() || s.len() > Tel::MAX || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut digits = [0u8; Tel::MAX];
        digits[..s.len()].copy_from_slice(s.as_bytes());
        Some(Tel { len: s.len() as u8, digits })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for Tel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tel({})", self.as_str())
    }
}

impl Serialize for Tel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Tel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tel, D::Error> {
        let s = String::deserialize(d)?;
        Tel::new(&s).ok_or_else(|| serde::de::Error::custom("a number of 1 to 30 digits"))
    }
}
