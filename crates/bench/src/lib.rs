//! `loanwire bench`: the ingest benchmark. The same generator loads the gateway and the ceiling
//! (the same HTTP stack answering a canned response) with the same settings in the same run;
//! the ratio between the two is the figure tracked, since absolute numbers on a shared machine
//! move from run to run.

pub mod ceiling;
pub mod chart;
pub mod console;
pub mod delivery;
pub mod load;
pub mod procs;
pub mod report;
pub mod run;
pub mod seed;
pub mod waits;

pub use run::{run, BenchOptions, Report};
