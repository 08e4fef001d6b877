//! The knowledge base as the engine sees it: documents read into text ([`extract`]), web
//! pages fetched for them ([`fetch`]), embedding models ([`embeddings`]) and the indexer that
//! computes documents' vectors as leased jobs ([`indexer`]). What an agent's documents add to
//! a turn is the turn's retrieval stage (`turn::retrieval`).

pub mod embeddings;
pub mod extract;
pub mod fetch;
pub mod indexer;
