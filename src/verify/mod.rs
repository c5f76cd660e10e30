//! The drivers of the rules: `receive` (the server's pre-receive hook),
//! `prepush` (the same judgement on the client before sending) and `replay`
//! (`audit verify` and the chain check behind `REF#stage`). None of them
//! holds a rule of its own: each builds a context and calls `crate::rules`.

pub mod prepush;
pub mod receipts;
pub mod receive;
pub mod replay;
