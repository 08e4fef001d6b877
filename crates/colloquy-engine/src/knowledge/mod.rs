//! The knowledge base as the engine sees it: documents read into text ([`extract`]) and web
//! pages fetched for them ([`fetch`]). What an agent's documents add to a turn is the turn's
//! retrieval stage (`turn::retrieval`).

pub mod extract;
pub mod fetch;
