//! One integration-test binary for the control crate.

mod agent;
mod agent_prop;
mod bus_contract;
mod messages;
mod park;
mod redis_faults;
mod service;
mod service_crash;
mod wallboard;
