//! Roles, lowest to highest, and what each may do: the table lives in `latchkey-verify`, so that resource
//! servers that verify Latchkey's tokens apply exactly the rules the server does.

pub use latchkey_verify::roles::{Permission, Role};
