//! The life of a test run (DESIGN.md §3.4). A run is a job in the store's queue; its stored
//! state says where it is in that queue, while the wire shows only the reference's three
//! values (`pending`, `passed`, `failed`).

use std::fmt;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Queued, not leased yet.
    Pending,
    /// Leased by a worker, which holds it until its lease expires.
    Running,
    /// Judged and passed.
    Passed,
    /// Judged and failed, or could not be judged (the cause is in its result).
    Failed,
    /// Its invocation was cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The reference's enum: a running run is still `pending` to a client, a cancelled one
    /// `failed` (with the cancellation as its rationale), so official clients never meet an
    /// unknown value.
    pub fn wire(self) -> &'static str {
        match self {
            RunStatus::Pending | RunStatus::Running => "pending",
            RunStatus::Passed => "passed",
            RunStatus::Failed | RunStatus::Cancelled => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored status this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown test run status {0:?}")]
pub struct UnknownRunStatus(pub String);

impl TryFrom<String> for RunStatus {
    type Error = UnknownRunStatus;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Ok(match s.as_str() {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "passed" => RunStatus::Passed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return Err(UnknownRunStatus(s)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip_and_the_wire_stays_in_the_reference_enum() {
        for status in [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Passed,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            assert_eq!(RunStatus::try_from(status.to_string()), Ok(status));
            assert!(["pending", "passed", "failed"].contains(&status.wire()));
        }
        assert!(RunStatus::try_from("done".to_owned()).is_err());
    }
}
