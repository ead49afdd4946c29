//! Everything about the engine: the pooled client, what each engine can do, and relaying its
//! answers back.

pub mod client;
pub mod engines;
pub mod forward;
pub mod h1;
pub mod pool;
pub mod usage_fill;
