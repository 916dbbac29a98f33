//! The control service's metrics (deploy/METRICS.md, "Agents"): agents per state and the lag of
//! its consumer groups. One service runs per tenant and a process serves many, so each service
//! holds its share of the process-wide gauges ([`GaugeShare`]) and moves the gauge by the change
//! in its share: the exposition shows the sum over tenants, and a stopped service takes its share
//! back.

use crate::agent::{AgentState, Floor, PauseReasonId};

pub const AGENTS: &str = "kakeru_control_agents";
pub const STREAM_LAG: &str = "kakeru_bus_stream_lag_entries";

/// Every agent state, in the order of [`AgentState`].
const STATES: [AgentState; 8] = [
    AgentState::Offline,
    AgentState::Ready,
    AgentState::Ringing,
    AgentState::Talking,
    AgentState::Hold,
    AgentState::WrapUp,
    AgentState::Paused { reason_id: PauseReasonId(0) },
    AgentState::Unknown,
];

fn state_index(s: &AgentState) -> usize {
    match s {
        AgentState::Offline => 0,
        AgentState::Ready => 1,
        AgentState::Ringing => 2,
        AgentState::Talking => 3,
        AgentState::Hold => 4,
        AgentState::WrapUp => 5,
        AgentState::Paused { .. } => 6,
        AgentState::Unknown => 7,
    }
}

/// Registers the help texts (idempotent; the recorder must be installed).
pub fn describe() {
    metrics::describe_gauge!(AGENTS, "Agents in each state, all tenants of this control process.");
    metrics::describe_gauge!(
        STREAM_LAG,
        "Entries not yet delivered to the consumer group (XINFO GROUPS lag), summed over tenants."
    );
}

/// One service's part of a gauge other services add to as well.
#[derive(Debug)]
pub struct GaugeShare {
    gauge: metrics::Gauge,
    mine: f64,
}

impl GaugeShare {
    pub fn new(gauge: metrics::Gauge) -> GaugeShare {
        GaugeShare { gauge, mine: 0.0 }
    }

    pub fn set(&mut self, value: f64) {
        if value != self.mine {
            self.gauge.increment(value - self.mine);
            self.mine = value;
        }
    }
}

impl Drop for GaugeShare {
    fn drop(&mut self) {
        self.gauge.decrement(self.mine);
    }
}

/// A service's shares of the agent and lag gauges.
#[derive(Debug)]
pub struct ServiceGauges {
    agents: Vec<GaugeShare>,
    /// (stream kind, share) per input stream, in the service's `Source` order.
    pub lag: [GaugeShare; 2],
}

impl ServiceGauges {
    pub fn new(group: &str) -> ServiceGauges {
        describe();
        let lag = |kind: &'static str| {
            GaugeShare::new(metrics::gauge!(STREAM_LAG, "stream" => kind, "group" => group.to_owned()))
        };
        ServiceGauges {
            agents: STATES.iter().map(|s| GaugeShare::new(metrics::gauge!(AGENTS, "state" => s.name()))).collect(),
            lag: [lag("commands"), lag("shard_events")],
        }
    }

    /// Counts the floor's agents per state (every agent once: O(agents), once a second).
    pub fn count_agents(&mut self, floor: &Floor) {
        let mut n = [0u32; STATES.len()];
        for a in floor.agents() {
            n[state_index(&a.state)] += 1;
        }
        for (share, n) in self.agents.iter_mut().zip(n) {
            share.set(f64::from(n));
        }
    }
}
