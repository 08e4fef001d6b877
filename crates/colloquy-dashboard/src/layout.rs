//! The page shell (navigation, sign-out, landmarks) and the pieces every page uses.

use maud::{DOCTYPE, Markup, html};

use crate::session::Viewer;

/// The dashboard's sections, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Home,
    Agents,
    Conversations,
    Tools,
    Tests,
    McpServers,
    KnowledgeBase,
    Changes,
    Webhooks,
    Search,
    Tickets,
}

const SECTIONS: [(Section, &str, &str); 11] = [
    (Section::Home, "/", "Overview"),
    (Section::Agents, "/agents", "Agents"),
    (Section::Conversations, "/conversations", "Conversations"),
    (Section::Search, "/search", "Search"),
    (Section::Tickets, "/tickets", "Tickets"),
    (Section::Tools, "/tools", "Tools"),
    (Section::Tests, "/tests", "Tests"),
    (Section::McpServers, "/mcp-servers", "MCP servers"),
    (Section::KnowledgeBase, "/knowledge-base", "Knowledge base"),
    (Section::Changes, "/changes", "Change log"),
    (Section::Webhooks, "/webhooks", "Webhooks"),
];

fn head(title: &str, extra: Markup) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Colloquy" }
            link rel="stylesheet" href="/assets/dashboard.css";
            link rel="icon" type="image/svg+xml" href="/assets/favicon.svg";
            (extra)
        }
    }
}

/// A page of a signed-in viewer.
pub fn page(viewer: &Viewer, section: Section, title: &str, body: Markup) -> Markup {
    page_with(viewer, section, title, html! {}, body)
}

/// A page with extra `<head>` content (a script, a refresh).
pub fn page_with(
    viewer: &Viewer, section: Section, title: &str, extra_head: Markup, body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, html! { meta name="csrf-token" content=(viewer.csrf); (extra_head) }))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Colloquy" }
                    nav aria-label="Main" {
                        ul {
                            @for (s, href, label) in SECTIONS {
                                li {
                                    a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                    span.who title="Signed in as" { (viewer.label) }
                    form.signout method="post" action="/logout" {
                        (csrf(viewer))
                        button type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" {
                    @if let Some(notice) = &viewer.notice {
                        p.notice role="alert" { "This server cannot answer yet: " (notice) "." }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page outside a session (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, html! {}))
            body {
                header.top { a.brand href="/" { "Colloquy" } }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form of a session carries.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="_csrf" value=(viewer.csrf); }
}

/// The page that asks before a destructive action: what will go, a button that posts to
/// `action`, and a way back. Destructive buttons link here instead of acting at once, so it
/// works without JavaScript.
pub fn confirm_page(
    viewer: &Viewer, section: Section, question: &str, consequence: &str, action: &str,
    button: &str, back: &str,
) -> Markup {
    let body = html! {
        p { (consequence) }
        div.actions {
            (action_button(viewer, action, button, "danger"))
            a href=(back) { "Cancel" }
        }
    };
    page(viewer, section, question, body)
}

/// A one-button form posting to `action` (delete, duplicate, re-run).
pub fn action_button(viewer: &Viewer, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(viewer))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// The "next page" link of a cursor-paged list.
pub fn next_page(href: Option<String>) -> Markup {
    html! {
        @if let Some(href) = href {
            nav.pager aria-label="Pages" { a rel="next" href=(href) { "Next page →" } }
        }
    }
}

/// A status word, coloured by outcome.
pub fn badge(text: &str, kind: Kind) -> Markup {
    html! { span class={ "badge " (kind.class()) } { (text) } }
}

/// A status word the API answers with (a conversation's status or outcome, a run's status, a
/// tool call's), coloured by what it means.
pub fn status(word: &str) -> Markup {
    match word {
        "success" | "passed" | "done" | "ok" => badge(word, Kind::Good),
        "failure" | "failed" | "error" => badge(word, Kind::Bad),
        "" | "unknown" => badge("unknown", Kind::Neutral),
        other => badge(other, Kind::Pending),
    }
}

/// How a status reads at a glance.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Good,
    Bad,
    Pending,
    Neutral,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Good => "good",
            Kind::Bad => "bad",
            Kind::Pending => "pending",
            Kind::Neutral => "neutral",
        }
    }
}

/// A message above a page's content (a failed save, say).
pub fn problem(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.error role="alert" { (message) }
        }
    }
}
