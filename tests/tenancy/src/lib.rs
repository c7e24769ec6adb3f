//! What the tenancy suite stands on: one gateway and the four domain consumers on a fresh
//! database and fresh topics ([`stack`]), the list of operations the gateway serves, read from its
//! own OpenAPI document and proto descriptor ([`operations`]), and the answers of both protocols
//! reduced to what a tenancy case asserts ([`reply`]).

pub mod operations;
pub mod reply;
pub mod stack;
