//! `ResourceAccessInfo`: how the caller relates to a resource they can see.

use colloquy_core::scope::Role;
use serde::Serialize;

use crate::auth::Caller;

/// `ResourceAccessInfo`, typed so that list pages serialize it without building a JSON tree
/// per item.
#[derive(Debug, Serialize)]
pub struct AccessInfo<'a> {
    is_creator: bool,
    creator_name: &'a str,
    creator_email: &'a str,
    role: &'static str,
    anonymous_access_level_override: Option<&'static str>,
    access_source: &'static str,
}

/// The access info of a resource created by `created_by` (named `name`, `email`).
pub fn access_info<'a>(
    created_by: &str,
    name: &'a str,
    email: &'a str,
    caller: &Caller,
) -> AccessInfo<'a> {
    let is_creator = created_by == caller.user_id;
    let role = caller.role();
    let access_source = if is_creator {
        "creator"
    } else if role == Role::Admin {
        "workspace_admin"
    } else {
        "workspace_default"
    };
    AccessInfo {
        is_creator,
        creator_name: name,
        creator_email: email,
        role: role.as_str(),
        anonymous_access_level_override: None,
        access_source,
    }
}
