//! The prompts overview (`/`): every prompt's status and latest scores, filtered, sorted and
//! paged in SQL, with a live-updating results region.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::{self, Drifting};
use super::layout::{layout, page, score, store_error_page};
use super::session::SignedIn;
use crate::store::{DriftEventRow, OverviewQuery, OverviewRow, OverviewSort, OverviewStatus};
use crate::web::AppState;

/// Prompts per page of the overview.
const PAGE_SIZE: i64 = 50;
/// Scores in a sparkline.
const SPARK_POINTS: i64 = 30;
/// Seconds between live updates of the overview.
const LIVE_EVERY_SECS: u32 = 5;

/// The overview's query string. Unknown values fall back to defaults: a hand-edited URL shows
/// the plain list, not an error.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    page: String,
    /// `1` = only the results region (the live update's request).
    #[serde(default)]
    partial: String,
}

struct Overview {
    query: OverviewQuery,
    page: i64,
}

impl Overview {
    fn from_params(p: &OverviewParams) -> Overview {
        let page = p.page.parse::<i64>().ok().filter(|n| (1..=1_000_000).contains(n)).unwrap_or(1);
        let sort = OverviewSort::parse(&p.sort).unwrap_or(OverviewSort::Status);
        Overview {
            query: OverviewQuery {
                search: p.q.chars().take(200).collect(),
                status: OverviewStatus::parse(&p.status),
                sort,
                descending: p.dir == "desc",
                limit: PAGE_SIZE,
                offset: (page - 1) * PAGE_SIZE,
            },
            page,
        }
    }

    /// This view's URL with some parameters changed.
    fn href(&self, sort: OverviewSort, descending: bool, page: i64, partial: bool) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !self.query.search.is_empty() {
            pairs.push(("q", self.query.search.clone()));
        }
        if let Some(s) = self.query.status {
            pairs.push(("status", s.as_str().into()));
        }
        pairs.push(("sort", sort.as_str().into()));
        pairs.push(("dir", if descending { "desc" } else { "asc" }.into()));
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        if partial {
            pairs.push(("partial", "1".into()));
        }
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", super::encode(v))).collect();
        format!("/?{}", query.join("&"))
    }
}

pub async fn overview(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(params): Query<OverviewParams>,
) -> Response {
    let view = Overview::from_params(&params);
    let project = signed_in.session.project_id;
    let (rows, total) = match state.store.prompt_overview(project, &view.query).await {
        Ok(found) => found,
        Err(e) => return store_error_page(e),
    };
    let drifted: Vec<i64> =
        rows.iter().filter(|r| r.status() == OverviewStatus::Drifted).map(|r| r.config.prompt.id).collect();
    let sparks = rows.iter().map(|r| state.store.recent_scores(r.config.prompt.id, SPARK_POINTS));
    let (events, sparks) =
        tokio::join!(state.store.latest_drift_events_of(&drifted), futures_util::future::join_all(sparks));
    let events = match events {
        Ok(e) => e,
        Err(e) => return store_error_page(e),
    };
    let sparks: Vec<Vec<f64>> = match sparks.into_iter().collect() {
        Ok(s) => s,
        Err(e) => return store_error_page(e),
    };
    let results = results(&view, &rows, &sparks, &events, total);
    if params.partial == "1" {
        return page(StatusCode::OK, results);
    }
    let body = html! {
        h1 { "Prompts" }
        @if total == 0 && view.query.search.is_empty() && view.query.status.is_none() {
            (empty_state())
        } @else {
            (filters(&view))
            div #prompt-results aria-live="polite"
                data-live-url=(view.href(view.query.sort, view.query.descending, view.page, true))
                data-live-every=(LIVE_EVERY_SECS) {
                (results)
            }
        }
    };
    page(StatusCode::OK, layout("Prompts", Some(&signed_in.session), "/", body))
}

fn empty_state() -> Markup {
    html! {
        div.panel #empty-prompts {
            p { strong { "No prompts yet: point the SDK at this server." } " Set these two variables where your app runs, then log a response with the DriftBalloon SDK:" }
            pre { "export DRIFTBALLOON_BASE_URL=http://localhost:8080\nexport DRIFTBALLOON_API_KEY=db_sk_..." }
            p.muted { "Prompts appear here with their first logged response and learn their baseline from the first 30." }
        }
    }
}

fn filters(view: &Overview) -> Markup {
    let q = &view.query;
    html! {
        form.filters method="get" action="/" role="search" data-auto-submit {
            div {
                label for="q" { "Name contains" }
                input #q type="search" name="q" value=(q.search);
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" selected[q.status.is_none()] { "Any" }
                    @for s in OverviewStatus::ALL {
                        option value=(s.as_str()) selected[q.status == Some(*s)] { (s.as_str()) }
                    }
                }
            }
            div {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    @for s in OverviewSort::ALL {
                        option value=(s.as_str()) selected[q.sort == *s] { (s.as_str()) }
                    }
                }
            }
            div {
                label for="dir" { "Order" }
                select #dir name="dir" {
                    option value="asc" selected[!q.descending] { "ascending" }
                    option value="desc" selected[q.descending] { "descending" }
                }
            }
            div { button type="submit" { "Apply" } }
        }
    }
}

/// A column header that sorts by `sort`, flipping the order when it is already the sort.
fn sort_header(view: &Overview, sort: OverviewSort, label: &str) -> Markup {
    let current = view.query.sort == sort;
    let descending = current && !view.query.descending;
    let aria = match (current, view.query.descending) {
        (false, _) => "none",
        (true, false) => "ascending",
        (true, true) => "descending",
    };
    html! {
        th scope="col" aria-sort=(aria) {
            a href=(view.href(sort, descending, 1, false)) { (label) @if current { (if view.query.descending { " ↓" } else { " ↑" }) } }
        }
    }
}

/// Whether a score is on the drifting side of its threshold.
pub fn semantic_over(score: Option<f64>, threshold: f64) -> bool {
    score.is_some_and(|s| Drifting::Below.is_drift(s, threshold))
}

pub fn length_over(score: Option<f64>, threshold: f64) -> bool {
    score.is_some_and(|s| Drifting::BeyondEither.is_drift(s, threshold))
}

fn against(value: Option<f64>, threshold: f64, over: bool, compare: &str) -> Markup {
    html! {
        span class=(if over { "score over" } else { "score" }) { (score(value)) }
        span.muted { " " (compare) " " (format!("{threshold:.2}")) }
    }
}

pub fn status_badge(status: OverviewStatus, row: &OverviewRow) -> Markup {
    html! {
        span class={ "badge status-" (status.as_str()) } {
            (status.as_str())
            @if status == OverviewStatus::Learning {
                " " (row.config.baseline_sample_count) "/" (row.config.prompt.min_baseline_samples)
            }
        }
    }
}

fn results(view: &Overview, rows: &[OverviewRow], sparks: &[Vec<f64>], events: &[DriftEventRow], total: i64) -> Markup {
    let pages = (total + PAGE_SIZE - 1) / PAGE_SIZE;
    let (sort, desc) = (view.query.sort, view.query.descending);
    html! {
        p.muted { (total) " prompt" @if total != 1 { "s" } @if pages > 1 { " · page " (view.page) " of " (pages) } }
        @if rows.is_empty() {
            p #no-match { "No prompt matches these filters. " a href="/" { "Show all prompts" } }
        } @else {
            div.table-wrap {
                table #prompts {
                    caption.visually-hidden { "Prompts with their drift status and latest scores" }
                    thead { tr {
                        (sort_header(view, OverviewSort::Name, "Prompt"))
                        (sort_header(view, OverviewSort::Status, "Status"))
                        th scope="col" { "Active" }
                        (sort_header(view, OverviewSort::Semantic, "Semantic"))
                        (sort_header(view, OverviewSort::Length, "Length"))
                        th scope="col" { "Recent semantic scores" }
                        th scope="col" { "Open drift" }
                    } }
                    tbody {
                        @for (row, spark) in rows.iter().zip(sparks) {
                            @let p = &row.config.prompt;
                            @let status = row.status();
                            @let event = events.iter().find(|e| e.prompt_id == p.id);
                            tr data-prompt=(p.name) {
                                th scope="row" { a href=(super::prompt_href(&p.name)) { (p.name) } }
                                td { (status_badge(status, row)) }
                                td { (p.active_prompt.as_str()) }
                                td { (against(row.semantic_score, p.drift_threshold, semantic_over(row.semantic_score, p.drift_threshold), "vs")) }
                                td { (against(row.length_score, p.length_drift_threshold, length_over(row.length_score, p.length_drift_threshold), "vs ±")) }
                                td.spark { (charts::sparkline(spark, p.drift_threshold, Drifting::Below, &format!("Recent semantic scores of {}", p.name))) }
                                td {
                                    @match (status, event) {
                                        (OverviewStatus::Drifted, Some(e)) => {
                                            a href={ (super::prompt_href(&p.name)) "#events" } { (e.kind.as_str()) " drift" }
                                            br; span.muted { (super::layout::time(e.created_at)) }
                                        }
                                        (OverviewStatus::Drifted, None) => { "drifted" }
                                        _ => span.muted { "none" },
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (super::layout::pager(
                "Prompt pages",
                (view.page > 1).then(|| view.href(sort, desc, view.page - 1, false)),
                (view.page < pages).then(|| view.href(sort, desc, view.page + 1, false)),
            ))
        }
    }
}
