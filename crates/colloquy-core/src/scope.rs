//! What an API key may do.
//!
//! A key carries scopes per resource family (`agents:read`, `tools:write`, ...) or `admin`.
//! `write` includes `read` of the same family; `admin` includes everything. Every route
//! declares the one scope it needs (the scope table in the API crate), and the role the
//! reference shows in `access_info.role` is derived from the scopes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A family of resources that scopes are granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// Agents, their links, widgets and branches.
    Agents,
    /// Tools and their execution log.
    Tools,
    /// Agent tests, test folders and test invocations.
    Tests,
    /// Conversations, their transcripts and tool calls.
    Conversations,
    /// Workspace secrets.
    Secrets,
    /// MCP servers.
    McpServers,
    /// Knowledge-base documents and folders.
    KnowledgeBase,
}

impl Family {
    /// Every family, in the order they are listed to users.
    pub const ALL: [Family; 7] = [
        Family::Agents,
        Family::Tools,
        Family::Tests,
        Family::Conversations,
        Family::Secrets,
        Family::McpServers,
        Family::KnowledgeBase,
    ];

    /// The family's name in scope strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Agents => "agents",
            Family::Tools => "tools",
            Family::Tests => "tests",
            Family::Conversations => "conversations",
            Family::Secrets => "secrets",
            Family::McpServers => "mcp_servers",
            Family::KnowledgeBase => "knowledge_base",
        }
    }
}

/// Read or write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// May read.
    Read,
    /// May create, change and delete (and read).
    Write,
}

/// One scope a key holds or a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Everything, including workspace administration.
    Admin,
    /// Access to one family.
    On(Family, Access),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::On(family, Access::Read) => write!(f, "{}:read", family.as_str()),
            Scope::On(family, Access::Write) => write!(f, "{}:write", family.as_str()),
        }
    }
}

/// A scope string that names no scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope `{0}`: expected admin, editor, viewer or <family>:read|write with family one of agents, tools, tests, conversations, secrets, mcp_servers"
)]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "admin" {
            return Ok(Scope::Admin);
        }
        let unknown = || UnknownScope(s.to_owned());
        let (family, access) = s.split_once(':').ok_or_else(unknown)?;
        let family = Family::ALL.into_iter().find(|f| f.as_str() == family).ok_or_else(unknown)?;
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            _ => return Err(unknown()),
        };
        Ok(Scope::On(family, access))
    }
}

/// The role shown in `access_info.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds `admin`.
    Admin,
    /// May write at least one family.
    Editor,
    /// Read-only.
    Viewer,
}

impl Role {
    /// The wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

/// The set of scopes a key holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Parses a comma- or space-separated list. Besides single scopes it accepts the shorthands
    /// `editor` (read and write on every family) and `viewer` (read on every family).
    pub fn parse(list: &str) -> Result<Scopes, UnknownScope> {
        let mut set = BTreeSet::new();
        for item in list.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "editor" => set.extend(Family::ALL.map(|f| Scope::On(f, Access::Write))),
                "viewer" => set.extend(Family::ALL.map(|f| Scope::On(f, Access::Read))),
                other => {
                    set.insert(other.parse()?);
                }
            }
        }
        if set.is_empty() {
            return Err(UnknownScope(list.to_owned()));
        }
        Ok(Scopes(set))
    }

    /// Only `admin`.
    pub fn admin() -> Scopes {
        Scopes(BTreeSet::from([Scope::Admin]))
    }

    /// Whether these scopes grant `required`.
    pub fn allows(&self, required: Scope) -> bool {
        if self.0.contains(&Scope::Admin) {
            return true;
        }
        match required {
            Scope::Admin => false,
            Scope::On(family, Access::Read) => {
                self.0.contains(&Scope::On(family, Access::Read))
                    || self.0.contains(&Scope::On(family, Access::Write))
            }
            Scope::On(family, Access::Write) => self.0.contains(&Scope::On(family, Access::Write)),
        }
    }

    /// The role these scopes amount to.
    pub fn role(&self) -> Role {
        if self.0.contains(&Scope::Admin) {
            Role::Admin
        } else if self.0.iter().any(|s| matches!(s, Scope::On(_, Access::Write))) {
            Role::Editor
        } else {
            Role::Viewer
        }
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_implies_read_and_admin_implies_all() {
        let s = Scopes::parse("agents:write, tools:read").unwrap();
        assert!(s.allows(Scope::On(Family::Agents, Access::Read)));
        assert!(s.allows(Scope::On(Family::Agents, Access::Write)));
        assert!(s.allows(Scope::On(Family::Tools, Access::Read)));
        assert!(!s.allows(Scope::On(Family::Tools, Access::Write)));
        assert!(!s.allows(Scope::Admin));
        assert_eq!(s.role(), Role::Editor);
        assert!(Scopes::admin().allows(Scope::On(Family::Secrets, Access::Write)));
        assert_eq!(Scopes::parse("viewer").unwrap().role(), Role::Viewer);
    }

    #[test]
    fn round_trips_through_text() {
        let s = Scopes::parse("editor").unwrap();
        assert_eq!(Scopes::parse(&s.to_string()).unwrap(), s);
        assert!(Scopes::parse("agents:delete").is_err());
        assert!(Scopes::parse("").is_err());
        assert!(Scopes::parse("root").is_err());
    }
}
