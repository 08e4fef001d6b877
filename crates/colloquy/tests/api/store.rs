//! The store on both backends: migrations, isolation, key paging, concurrent bootstrap and
//! concurrent writers.

use std::collections::HashSet;
use std::sync::Arc;

use colloquy_core::keys::generate_token;
use colloquy_store::{
    KeyStore, NewApiKey, SecretRecord, SecretStore, Store, StoreError, WorkspaceStore,
};

use crate::helpers::{Backend, TestDb, dual_db};

async fn migrations_apply_fresh_and_rerun_cleanly(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.migrate().await.expect("second run is a no-op");
    store.ping().await.unwrap();
    drop(store);
    db.store().await.migrate().await.expect("a new connection re-runs cleanly");
}
dual_db!(migrations_apply_fresh_and_rerun_cleanly);

async fn workspaces_are_isolated_at_the_store(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = store.ensure_workspace("a").await.unwrap();
    let b = store.ensure_workspace("b").await.unwrap();
    assert_eq!(store.ensure_workspace("a").await.unwrap(), a, "idempotent");
    let secret = SecretRecord {
        id: "secret_1".into(),
        workspace_id: a.id.clone(),
        name: "n".into(),
        sealed_value: "sealed".into(),
        created_by: "u".into(),
        created_at: 1,
        updated_at: 1,
    };
    store.insert_secret(&secret).await.unwrap();
    assert_eq!(store.get_secret(&a.id, "secret_1").await.unwrap(), secret);
    assert!(matches!(store.get_secret(&b.id, "secret_1").await, Err(StoreError::NotFound)));
    assert!(store.list_secrets(&b.id, None, None, None).await.unwrap().is_empty());
    assert!(matches!(
        store.update_secret(&b.id, "secret_1", "x", "y", 2).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(store.delete_secret(&b.id, "secret_1").await, Err(StoreError::NotFound)));
    assert_eq!(store.get_secret(&a.id, "secret_1").await.unwrap().name, "n");
}
dual_db!(workspaces_are_isolated_at_the_store);

async fn keys_page_by_creation_and_revoke(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    for i in 0..25 {
        let ws = if i % 2 == 0 { "even" } else { "odd" };
        let new = NewApiKey {
            workspace: ws.into(),
            user_name: "u".into(),
            user_email: format!("u{i}@x.test"),
            name: format!("k{i}"),
            scopes: "agents:read".into(),
        };
        store.create_key(&new, &generate_token()).await.unwrap();
    }
    let mut seen = HashSet::new();
    let mut after = None;
    loop {
        let page = store.list_keys(Some("even"), after.clone(), 4).await.unwrap();
        for k in &page {
            assert_eq!(k.workspace, "even");
            assert!(seen.insert(k.id.clone()));
        }
        match page.last() {
            Some(last) if page.len() == 4 => after = Some((last.created_at, last.id.clone())),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 13);
    let id = seen.iter().next().unwrap().clone();
    store.revoke_key(&id).await.unwrap();
    assert!(matches!(store.revoke_key("key_missing").await, Err(StoreError::NotFound)));
}
dual_db!(keys_page_by_creation_and_revoke);

/// Several nodes starting at once on an empty database create exactly one bootstrap key.
async fn concurrent_bootstrap_creates_one_key(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store().await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            let store = colloquy_store::SqlStore::connect(&url, &Default::default()).await.unwrap();
            store.bootstrap_key(&generate_token()).await.unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += usize::from(t.await.unwrap());
    }
    assert_eq!(created, 1);
    let store = db.store().await;
    assert_eq!(store.list_keys(None, None, 100).await.unwrap().len(), 1);
}
dual_db!(concurrent_bootstrap_creates_one_key);

/// Many concurrent writers: none fails with a busy/locked error.
async fn concurrent_writers_all_succeed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = Arc::new(db.store().await);
    let ws = store.ensure_workspace("w").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        let ws_id = ws.id.clone();
        tasks.push(tokio::spawn(async move {
            let s = SecretRecord {
                id: format!("secret_{i:04}"),
                workspace_id: ws_id,
                name: format!("s{i}"),
                sealed_value: "x".into(),
                created_by: "u".into(),
                created_at: i,
                updated_at: i,
            };
            store.insert_secret(&s).await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("write succeeds");
    }
    assert_eq!(store.list_secrets(&ws.id, None, None, None).await.unwrap().len(), 200);
}
dual_db!(concurrent_writers_all_succeed);

/// The run queue: leases are exclusive, expired leases are taken over, and only the holder of
/// the current lease completes a run — so each run completes exactly once.
async fn test_runs_lease_expire_and_complete_once(backend: Backend) {
    use colloquy_core::test_runs::RunStatus;
    use colloquy_store::{InvocationRow, RunRow, TestRunStore};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ws = store.ensure_workspace("w").await.unwrap();
    let user = store.ensure_user(&ws.id, "u", "u@x.test").await.unwrap();
    let inv = InvocationRow {
        id: "suite_1".into(),
        workspace_id: ws.id.clone(),
        agent_id: "agent_1".into(),
        branch_id: None,
        version_id: None,
        name: None,
        repeat_count: 1,
        created_by: user.id.clone(),
        created_at: 100,
        document: "{}".into(),
    };
    let runs: Vec<RunRow> = (0..5)
        .map(|i| RunRow {
            id: format!("run_{i}"),
            invocation_id: inv.id.clone(),
            workspace_id: ws.id.clone(),
            test_id: format!("test_{i}").into(),
            test_name: format!("t{i}"),
            status: RunStatus::Pending,
            attempt: 0,
            worker: None,
            created_at: 100 + i,
            updated_at: 100 + i,
            result: "{}".into(),
        })
        .collect();
    store.insert_invocation(&inv, &runs).await.unwrap();

    let a = store.lease_runs("A", 1000, 60, 3).await.unwrap();
    let b = store.lease_runs("B", 1000, 60, 10).await.unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 2);
    assert!(a.iter().all(|r| !b.iter().any(|x| x.id == r.id)), "exclusive leases");
    assert!(store.lease_runs("C", 1001, 60, 10).await.unwrap().is_empty());

    assert!(
        store
            .complete_run(&a[0].id, "A", a[0].attempt, RunStatus::Passed, "{}", 1002)
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_run(&a[0].id, "A", a[0].attempt, RunStatus::Failed, "{}", 1003)
            .await
            .unwrap(),
        "completes once"
    );

    // A dies: its other two leases expire and C takes them over; A's late results are refused.
    let taken = store.lease_runs("C", 1100, 60, 10).await.unwrap();
    let ids: Vec<&str> = taken.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(taken.len(), 4, "A's two and B's two expired: {ids:?}");
    assert!(
        !store
            .complete_run(&a[1].id, "A", a[1].attempt, RunStatus::Passed, "{}", 1101)
            .await
            .unwrap()
    );
    for r in &taken {
        assert!(
            store.complete_run(&r.id, "C", r.attempt, RunStatus::Failed, "{}", 1102).await.unwrap()
        );
    }
    let all = store.invocation_runs(&inv.id).await.unwrap();
    assert!(all.iter().all(|r| r.status == RunStatus::Passed || r.status == RunStatus::Failed));
    assert!(
        store.lease_runs("D", 5000, 60, 10).await.unwrap().is_empty(),
        "finished runs are never leased again"
    );
}
dual_db!(test_runs_lease_expire_and_complete_once);

/// The transcript search over 3,000 conversations (more than the 2,000 newest matches SQLite
/// ranks first): a phrase said in one of them is found, and a word said in every one is ranked
/// among the newest matches first, yet an agent whose conversations are all older than those
/// still gets full pages.
async fn transcripts_are_searched_among_three_thousand_conversations(backend: Backend) {
    use colloquy_core::ids::ConversationId;
    use colloquy_store::{
        ConversationProgress, ConversationRecord, ConversationStore, MessageSearch, MessageStore,
    };
    let db = TestDb::new(backend).await;
    let store = Arc::new(db.store().await);
    let ws = store.ensure_workspace("w").await.unwrap().id;
    let save = {
        let (store, ws) = (store.clone(), ws.clone());
        move |i: usize| {
            let (store, ws) = (store.clone(), ws.clone());
            async move {
                let id = ConversationId::generate();
                let agent = if i < 100 { "agent_old" } else { "agent_new" };
                let record = ConversationRecord {
                    id: id.clone(),
                    workspace_id: ws.clone(),
                    agent_id: agent.into(),
                    branch_id: None,
                    version_id: None,
                    source: "ws".into(),
                    started_at: 1_700_000_000 + i as i64,
                    external_reference: None,
                };
                let progress = ConversationProgress { status: "done".into(), ..Default::default() };
                store.start_conversation(&record, &progress).await.unwrap();
                let mut said =
                    vec![(0, "user".to_owned(), format!("please check my order number {i}"))];
                said.push((1, "agent".to_owned(), "Checking it now.".to_owned()));
                if i == 42 {
                    said.push((
                        2,
                        "user".to_owned(),
                        "a purple elephant ate my invoice".to_owned(),
                    ));
                }
                store.index_messages(&ws, &id, &said).await.unwrap();
                id
            }
        }
    };
    let mut old = Vec::new();
    for i in 0..100 {
        old.push(save(i).await);
    }
    let mut rest = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let save = save.clone();
        rest.spawn(async move {
            for i in (100 + chunk..3_000).step_by(8) {
                save(i).await;
            }
        });
    }
    rest.join_all().await;
    let search = |words: &[&str], agent: Option<&str>, offset: u32| MessageSearch {
        words: words.iter().map(|w| (*w).to_owned()).collect(),
        agent_id: agent.map(str::to_owned),
        offset,
        limit: 21,
        ..MessageSearch::default()
    };
    let found =
        store.search_messages(&ws, &search(&["purple", "elephant"], None, 0)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].conversation_id, old[42].as_str());
    assert_eq!(found[0].transcript_index, 2);
    let page = store.search_messages(&ws, &search(&["order"], None, 0)).await.unwrap();
    assert_eq!(page.len(), 21);
    let theirs =
        store.search_messages(&ws, &search(&["order"], Some("agent_old"), 0)).await.unwrap();
    assert_eq!(theirs.len(), 21, "older than the newest matches, still a full page");
    assert!(theirs.iter().all(|h| h.agent_id == "agent_old"));
    let last =
        store.search_messages(&ws, &search(&["order"], Some("agent_old"), 90)).await.unwrap();
    assert_eq!(last.len(), 10, "the agent's 100 conversations in all");
}
dual_db!(transcripts_are_searched_among_three_thousand_conversations);

/// The node's progress writer: states handed over by many conversations at once are written,
/// each conversation's newest one winning; a conversation's flush returns once its last state
/// is stored; and a conversation deleted meanwhile does not keep the others' from being saved.
async fn live_progress_is_written_together_newest_state_first(backend: Backend) {
    use colloquy_core::ids::ConversationId;
    use colloquy_engine::conversation::ProgressWriter;
    use colloquy_store::{ConversationProgress, ConversationRecord};
    let db = TestDb::new(backend).await;
    let store: colloquy_store::DynStore = Arc::new(db.store().await);
    let ws = store.ensure_workspace("w").await.unwrap().id;
    let mut ids = Vec::new();
    for i in 0..20 {
        let record = ConversationRecord {
            id: ConversationId::generate(),
            workspace_id: ws.clone(),
            agent_id: "agent_a".into(),
            branch_id: None,
            version_id: None,
            source: "ws".into(),
            started_at: 1_700_000_000 + i,
            external_reference: None,
        };
        let progress = ConversationProgress { status: "in-progress".into(), ..Default::default() };
        store.start_conversation(&record, &progress).await.unwrap();
        ids.push(record.id);
    }
    let gone = ids.pop().unwrap();
    store.delete_conversation(&ws, &gone).await.unwrap();
    let writer = ProgressWriter::spawn(store.clone());
    let state = |turns: i64| ConversationProgress {
        status: "in-progress".into(),
        message_count: turns,
        document: format!(r#"{{"transcript": {turns}}}"#),
        ..Default::default()
    };
    for turns in 1..=30 {
        for id in ids.iter().chain([&gone]) {
            writer.save(&ws, id, state(turns));
        }
        if turns % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for id in &ids {
        writer.flush(id).await;
        let row = store.get_conversation(&ws, id).await.unwrap();
        assert_eq!((row.message_count, row.document.as_str()), (30, r#"{"transcript": 30}"#));
    }
    writer.flush(&gone).await;
    assert!(matches!(store.get_conversation(&ws, &gone).await, Err(StoreError::NotFound)));
}
dual_db!(live_progress_is_written_together_newest_state_first);
