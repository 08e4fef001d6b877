//! `ResourceAccessInfo`: how the caller relates to a resource they can see.

use colloquy_core::scope::Role;
use serde_json::{Value, json};

use crate::auth::Caller;

/// The access info of a resource created by `created_by` (named `name`, `email`).
pub fn access_info(created_by: &str, name: &str, email: &str, caller: &Caller) -> Value {
    let is_creator = created_by == caller.user_id;
    let role = caller.role();
    let source = if is_creator {
        "creator"
    } else if role == Role::Admin {
        "workspace_admin"
    } else {
        "workspace_default"
    };
    json!({
        "is_creator": is_creator,
        "creator_name": name,
        "creator_email": email,
        "role": role.as_str(),
        "anonymous_access_level_override": null,
        "access_source": source,
    })
}
