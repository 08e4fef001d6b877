-- Crawls of a site into URL documents: leased jobs (any node works one; a dead node's is taken
-- over when its lease runs out) whose frontier is kept page by page, so a job taken over goes
-- on where it stopped.
CREATE TABLE kb_crawl_jobs (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    seed_url          TEXT NOT NULL,
    pattern           TEXT,
    -- JSON array of regular expressions.
    exclude_patterns  TEXT NOT NULL,
    -- JSON array of sitemap URLs, read first (as pages of depth 0) for the pages they list.
    sitemap_urls      TEXT NOT NULL,
    max_depth         BIGINT NOT NULL,
    max_pages         BIGINT NOT NULL,
    root_folder_id    TEXT NOT NULL,
    -- CrawlStatus: 'queued', 'processing', 'succeeded', 'failed', 'cancelled'.
    status            TEXT NOT NULL,
    worker            TEXT,
    lease_until       BIGINT,
    attempt           BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX kb_crawl_jobs_queue ON kb_crawl_jobs (status, lease_until);
CREATE INDEX kb_crawl_jobs_by_workspace ON kb_crawl_jobs (workspace_id, created_at, id);

-- Every page a crawl found: 'queued', 'scraped', 'skipped' (robots.txt) or 'failed' (why);
-- sitemaps (depth 0) end 'sitemap' and are not counted as pages.
CREATE TABLE kb_crawl_pages (
    job_id       TEXT NOT NULL REFERENCES kb_crawl_jobs(id),
    url          TEXT NOT NULL,
    depth        BIGINT NOT NULL,
    seq          BIGINT NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    document_id  TEXT,
    PRIMARY KEY (job_id, url)
);
CREATE INDEX kb_crawl_pages_next ON kb_crawl_pages (job_id, status, depth, seq);
