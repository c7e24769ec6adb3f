//! The load generator and what stands around it: the stack it drives (processes it can kill),
//! the fake providers, the ledger of accepted commands and the invariant checker of the chaos soak.
//! `just soak` and `just bench system` are built from these parts.

pub mod api;
pub mod checker;
pub mod cpu;
pub mod fakes;
pub mod ledger;
pub mod load;
pub mod mix;
pub mod observe;
pub mod soak;
pub mod stack;
