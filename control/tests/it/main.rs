//! One integration-test binary for the control crate.

mod agent;
mod agent_prop;
mod boundary;
mod commit;
mod edge;
mod park;
mod service;
mod service_crash;
mod wallboard;
