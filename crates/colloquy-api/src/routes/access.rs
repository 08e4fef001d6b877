//! How the caller relates to what they can see: `ResourceAccessInfo`, and the creator filter
//! of lists (`created_by_user_id`, with `@me` for the caller).

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
    created_by: &str, name: &'a str, email: &'a str, caller: &Caller,
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

/// The creator a list is limited to: `created_by_user_id` (`@me` is the caller), else the
/// caller when the deprecated `show_only_owned_*` flag is set, else nobody in particular.
pub fn created_by(caller: &Caller, user: Option<&str>, only_owned: Option<bool>) -> Option<String> {
    match user.filter(|u| !u.is_empty()) {
        Some("@me") => Some(caller.user_id.clone()),
        Some(user) => Some(user.to_owned()),
        None if only_owned == Some(true) => Some(caller.user_id.clone()),
        None => None,
    }
}
