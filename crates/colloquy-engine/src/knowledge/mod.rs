//! The knowledge base as the engine sees it: documents read into text ([`extract`]), web
//! pages fetched for them ([`fetch`]), embedding models ([`embeddings`]), and the node's
//! [`worker`] that computes embedding indexes ([`indexer`]), crawls sites ([`crawler`]) and
//! reads auto-synced URL documents again ([`sync`]) as leased jobs, and embeds finished
//! conversations' messages for the transcripts' smart search ([`messages`]). What an agent's documents add to a turn is the turn's retrieval stage
//! (`turn::retrieval`).

mod crawler;
pub mod embeddings;
pub mod extract;
pub mod fetch;
mod indexer;
pub mod messages;
mod sync;
pub mod worker;
