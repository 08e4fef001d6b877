//! Agent tests and test folders ("test entities").

use async_trait::async_trait;

use colloquy_core::ids::{TestId, WorkspaceId};

use crate::db::{change_one, execute, transaction};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, escape_like, fetch_all, find};
use crate::{SqlStore, StoreResult};

/// A test or folder as read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TestEntityRow {
    /// `test_...` or `tfld_...`.
    #[sqlx(try_from = "String")]
    pub id: TestId,
    /// `llm`, `tool`, `simulation` or `folder`.
    pub test_type: String,
    /// Name.
    pub name: String,
    /// Parent folder, `None` at the root.
    pub parent_folder_id: Option<String>,
    /// Creator.
    pub created_by: String,
    /// Creator's name.
    pub creator_name: String,
    /// Creator's email.
    pub creator_email: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// The test's document (JSON text; `{}` for folders).
    pub document: String,
}
sqlite_row!(TestEntityRow {
    id,
    test_type,
    name,
    parent_folder_id,
    created_by,
    creator_name,
    creator_email,
    created_at,
    updated_at,
    document,
});

/// A new test or folder.
#[derive(Debug, Clone)]
pub struct NewTestEntity {
    /// Id.
    pub id: TestId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Type (`folder` for folders).
    pub test_type: String,
    /// Name.
    pub name: String,
    /// Parent folder.
    pub parent_folder_id: Option<String>,
    /// Creator.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Document text.
    pub document: String,
}

/// Where listed entities must be.
#[derive(Debug, Clone, Default)]
pub enum ParentFilter {
    /// Anywhere.
    #[default]
    Any,
    /// At the root.
    Root,
    /// In this folder.
    Folder(String),
}

/// Filters of the tests list.
#[derive(Debug, Clone, Default)]
pub struct TestFilter {
    /// Lower-cased substring of the name.
    pub search: Option<String>,
    /// Location.
    pub parent: ParentFilter,
    /// Types to include (`folder` included means folders).
    pub types: Vec<String>,
    /// Only created by this user.
    pub created_by: Option<String>,
    /// Only not created by this user (shared with them).
    pub not_created_by: Option<String>,
}

/// One page.
#[derive(Debug, Clone)]
pub struct TestPage {
    /// Folders before tests.
    pub folders_first: bool,
    /// Continue after this (is_folder, created_at, id).
    pub after: Option<(i64, i64, String)>,
    /// Rows to return.
    pub limit: u32,
}

/// Agent tests and folders.
#[async_trait]
pub trait TestStore {
    /// Stores a test or folder.
    async fn insert_test_entity(&self, entity: &NewTestEntity) -> StoreResult<()>;
    /// One entity of the workspace.
    async fn get_test_entity(
        &self, workspace_id: &WorkspaceId, id: &TestId,
    ) -> StoreResult<TestEntityRow>;
    /// The workspace's entities among `ids`.
    async fn get_test_entities(
        &self, workspace_id: &WorkspaceId, ids: &[TestId],
    ) -> StoreResult<Vec<TestEntityRow>>;
    /// Every folder of the workspace (documents empty), for paths and tree checks.
    async fn test_folders(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<TestEntityRow>>;
    /// How many entities each folder directly holds: `(folder id, count)`.
    async fn test_folder_sizes(
        &self, workspace_id: &WorkspaceId,
    ) -> StoreResult<Vec<(String, i64)>>;
    /// A page of entities, newest first (folders first when asked).
    async fn list_test_entities(
        &self, workspace_id: &WorkspaceId, filter: &TestFilter, page: &TestPage,
    ) -> StoreResult<Vec<TestEntityRow>>;
    /// Replaces a test (or renames a folder: document ignored for folders).
    async fn update_test_entity(
        &self, workspace_id: &WorkspaceId, id: &TestId, name: &str, parent_folder_id: Option<&str>,
        document: &str, now: i64,
    ) -> StoreResult<()>;
    /// Moves entities to a folder (or the root).
    async fn move_test_entities(
        &self, workspace_id: &WorkspaceId, ids: &[TestId], parent_folder_id: Option<&str>, now: i64,
    ) -> StoreResult<()>;
    /// Deletes entities.
    async fn delete_test_entities(
        &self, workspace_id: &WorkspaceId, ids: &[TestId],
    ) -> StoreResult<()>;
}

const SELECT: &str = "SELECT e.id, e.test_type, e.name, e.parent_folder_id, e.created_by, u.name AS creator_name, \
     u.email AS creator_email, e.created_at, e.updated_at";

#[async_trait]
impl TestStore for SqlStore {
    async fn insert_test_entity(&self, e: &NewTestEntity) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO test_entities (id, workspace_id, test_type, is_folder, name, name_lower, parent_folder_id, \
             created_by, created_at, updated_at, document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
            e.id.as_str(),
            e.workspace_id.as_str(),
            &e.test_type,
            i64::from(e.test_type == "folder"),
            &e.name,
            e.name.to_lowercase(),
            &e.parent_folder_id,
            &e.created_by,
            e.created_at,
            &e.document,
        )?;
        Ok(())
    }

    async fn get_test_entity(
        &self, workspace_id: &WorkspaceId, id: &TestId,
    ) -> StoreResult<TestEntityRow> {
        find!(
            self,
            format!(
                "{SELECT}, e.document FROM test_entities e JOIN users u ON u.id = e.created_by WHERE e.workspace_id = $1 AND e.id = $2"
            ),
            workspace_id,
            id.as_str()
        )
    }

    async fn get_test_entities(
        &self, workspace_id: &WorkspaceId, ids: &[TestId],
    ) -> StoreResult<Vec<TestEntityRow>> {
        let Some(q) = Query::among(
            format!(
                "{SELECT}, e.document FROM test_entities e JOIN users u ON u.id = e.created_by \
                 WHERE e.workspace_id = $1"
            ),
            workspace_id,
            "e.id",
            ids,
        ) else {
            return Ok(Vec::new());
        };
        Ok(fetch_all!(self, q)?)
    }

    async fn test_folders(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<TestEntityRow>> {
        let sql = format!(
            "{SELECT}, '' AS document FROM test_entities e JOIN users u ON u.id = e.created_by \
             WHERE e.workspace_id = $1 AND e.is_folder = 1"
        );
        Ok(fetch_all!(self, Query::in_workspace(sql, workspace_id))?)
    }

    async fn test_folder_sizes(
        &self, workspace_id: &WorkspaceId,
    ) -> StoreResult<Vec<(String, i64)>> {
        let q = Query::in_workspace(
            "SELECT parent_folder_id, COUNT(*) FROM test_entities \
             WHERE workspace_id = $1 AND parent_folder_id IS NOT NULL GROUP BY parent_folder_id",
            workspace_id,
        );
        Ok(fetch_all!(self, q)?)
    }

    async fn list_test_entities(
        &self, workspace_id: &WorkspaceId, filter: &TestFilter, page: &TestPage,
    ) -> StoreResult<Vec<TestEntityRow>> {
        let mut q = Query::in_workspace(
            format!(
                "{SELECT}, '' AS document FROM test_entities e JOIN users u ON u.id = e.created_by WHERE e.workspace_id = $1"
            ),
            workspace_id,
        );
        if let Some(s) = &filter.search {
            q.push(
                " AND e.name_lower LIKE ? ESCAPE '\\'",
                Bind::Text(format!("%{}%", escape_like(s))),
            );
        }
        match &filter.parent {
            ParentFilter::Any => {}
            ParentFilter::Root => q.raw(" AND e.parent_folder_id IS NULL"),
            ParentFilter::Folder(f) => q.push(" AND e.parent_folder_id = ?", Bind::Text(f.clone())),
        }
        if let Some(u) = &filter.created_by {
            q.push(" AND e.created_by = ?", Bind::Text(u.clone()));
        }
        if let Some(u) = &filter.not_created_by {
            q.push(" AND e.created_by <> ?", Bind::Text(u.clone()));
        }
        if !filter.types.is_empty() {
            q.push_in("e.test_type", &filter.types);
        }
        if let Some((folder, at, id)) = &page.after {
            let a = q.param(Bind::Int(*at));
            let i = q.param(Bind::Text(id.clone()));
            let by_time = format!("(e.created_at < {a} OR (e.created_at = {a} AND e.id < {i}))");
            if page.folders_first {
                let f = q.param(Bind::Int(*folder));
                q.raw(&format!(" AND (e.is_folder < {f} OR (e.is_folder = {f} AND {by_time}))"));
            } else {
                q.raw(&format!(" AND {by_time}"));
            }
        }
        let order = if page.folders_first {
            "e.is_folder DESC, e.created_at DESC, e.id DESC"
        } else {
            "e.created_at DESC, e.id DESC"
        };
        q.order_and_limit(order, page.limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn update_test_entity(
        &self, workspace_id: &WorkspaceId, id: &TestId, name: &str, parent_folder_id: Option<&str>,
        document: &str, now: i64,
    ) -> StoreResult<()> {
        change_one!(
            self,
            "UPDATE test_entities SET name = $3, name_lower = $4, parent_folder_id = $5, document = $6, updated_at = $7 \
             WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id.as_str(),
            name,
            name.to_lowercase(),
            parent_folder_id,
            document,
            now,
        )
    }

    async fn move_test_entities(
        &self, workspace_id: &WorkspaceId, ids: &[TestId], parent_folder_id: Option<&str>, now: i64,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            for id in ids {
                sqlx::query("UPDATE test_entities SET parent_folder_id = $3, updated_at = $4 WHERE workspace_id = $1 AND id = $2")
                    .bind(workspace_id.as_str())
                    .bind(id.as_str())
                    .bind(parent_folder_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
    }

    async fn delete_test_entities(
        &self, workspace_id: &WorkspaceId, ids: &[TestId],
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            for id in ids {
                sqlx::query("DELETE FROM test_entities WHERE workspace_id = $1 AND id = $2")
                    .bind(workspace_id.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
    }
}
