//! Prompt templates and prompt A/B tests (`/ui/templates`): the lists, each one's versions, and
//! publish forms. The SDK's guide says to "configure in the dashboard"; this is where. Reads
//! and publishes go through the REST handlers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::{json, Value};

use super::forms::{field, indexed_rows, number_or_text, problems_of};
use super::layout::{self, api_error_page, csrf_field, field_problems, layout, page, time};
use super::session::{redirect, PostedForm, SignedIn};
use super::{encode, owner};
use crate::ops::templates::{self as op, AbTestView, TemplatePublish, TemplateView};
use crate::validate::{FromJson, Problem};
use crate::web::AppState;

const NAV: &str = "/ui/templates";
/// A/B variant rows offered beyond the filled ones, and read from a post at most.
const SPARE_ROWS: usize = 2;
const MAX_ROWS: usize = 100;

fn template_href(key: &str) -> String {
    format!("/ui/templates/{}", encode(key))
}

fn ab_test_href(key: &str) -> String {
    format!("/ui/ab-tests/{}", encode(key))
}

/// The two publish forms' contents, as stored or as typed.
#[derive(Debug, Default, Clone)]
pub struct TemplateForm {
    key: String,
    system_prompt: String,
    user_template: String,
}

#[derive(Debug, Default, Clone)]
pub struct AbTestForm {
    key: String,
    /// (template key, version or "", weight)
    variants: Vec<[String; 3]>,
}

/// Which form a re-shown page holds problems for.
enum Invalid<'a> {
    None,
    Template(&'a TemplateForm, &'a [Problem]),
    AbTest(&'a AbTestForm, &'a [Problem]),
}

pub async fn index(State(state): State<AppState>, signed_in: SignedIn) -> Response {
    render_index(&state, &signed_in, Invalid::None).await
}

async fn render_index(state: &AppState, signed_in: &SignedIn, invalid: Invalid<'_>) -> Response {
    let caller = owner(signed_in);
    let read = tokio::try_join!(op::list_templates(state, &caller), op::list_ab_tests(state, &caller));
    let (templates, tests) = match read {
        Ok((t, a)) => (t.prompt_templates, a.prompt_ab_tests),
        Err(e) => return api_error_page(e),
    };
    let (template_form, template_problems, ab_form, ab_problems) = match invalid {
        Invalid::None => (TemplateForm::default(), &[][..], AbTestForm::default(), &[][..]),
        Invalid::Template(f, p) => (f.clone(), p, AbTestForm::default(), &[][..]),
        Invalid::AbTest(f, p) => (TemplateForm::default(), &[][..], f.clone(), p),
    };
    let status = if template_problems.is_empty() && ab_problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let body = html! {
        h1 { "Prompt templates" }
        p.muted { "Templates with " code { "{{variable}}" } " placeholders, served to the Fallom SDK's " code { "prompts.get(key, variables)" } "." }
        @if templates.is_empty() {
            div.panel #empty-templates { p { strong { "No templates yet." } " Publish the first one below." } }
        } @else {
            div.table-wrap { table #template-list {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Latest version" } th scope="col" { "User template" } th scope="col" { "Published" } } }
                tbody { @for t in &templates { tr {
                    th scope="row" { a href=(template_href(&t.key)) { (t.key) } }
                    td { "v" (t.version) } td.response { (t.user_template) } td { (time(t.created_at)) }
                } } }
            } }
        }
        section aria-labelledby="publish-template-h" {
            h2 #publish-template-h { "Publish a template version" }
            (template_form_markup(signed_in, &template_form, template_problems, true))
        }
        h2 #ab-h { "Prompt A/B tests" }
        p.muted { "Split sessions between templates (or pinned versions) by weight: " code { "prompts.get_ab(key, session_id)" } "." }
        @if tests.is_empty() {
            div.panel #empty-ab-tests { p { strong { "No A/B tests yet." } " Publish one below once its templates exist." } }
        } @else {
            div.table-wrap { table #ab-test-list {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Latest version" } th scope="col" { "Variants" } th scope="col" { "Published" } } }
                tbody { @for t in &tests { tr {
                    th scope="row" { a href=(ab_test_href(&t.key)) { (t.key) } }
                    td { "v" (t.version) } td { (variants_text(t)) } td { (time(t.created_at)) }
                } } }
            } }
        }
        section aria-labelledby="publish-ab-h" {
            h3 #publish-ab-h { "Publish an A/B test version" }
            (ab_form_markup(signed_in, &ab_form, ab_problems))
        }
    };
    page(status, layout("Templates", Some(&signed_in.session), NAV, body))
}

fn variants_text(t: &AbTestView) -> String {
    let parts: Vec<String> = t
        .variants
        .iter()
        .map(|v| {
            let version = v.prompt_version.map_or("latest".to_string(), |n| format!("v{n}"));
            format!("{} ({version}) {}%", v.prompt_key, v.weight)
        })
        .collect();
    parts.join(" · ")
}

fn text_field(id: &str, label: &str, value: &str, problems: &[Problem], multiline: bool) -> Markup {
    let bad = layout::invalid(problems, id);
    html! {
        div.field {
            label for=(id) { (label) }
            @if multiline {
                textarea id=(id) name=(id) rows="4" aria-invalid=[bad.then_some("true")] { (value) }
            } @else {
                input id=(id) name=(id) type="text" value=(value) aria-invalid=[bad.then_some("true")];
            }
            (field_problems(problems, id, id))
        }
    }
}

fn form_problems_banner(problems: &[Problem]) -> Markup {
    html! { @if !problems.is_empty() { p.error role="alert" { "Not published: fix the fields marked below." } } }
}

fn template_form_markup(signed_in: &SignedIn, form: &TemplateForm, problems: &[Problem], new_key: bool) -> Markup {
    html! {
        (form_problems_banner(problems))
        form method="post" action="/ui/templates" novalidate {
            (csrf_field(&signed_in.session))
            @if new_key { (text_field("key", "Key", &form.key, problems, false)) } @else { input type="hidden" name="key" value=(form.key); }
            (text_field("system_prompt", "System prompt (may be empty)", &form.system_prompt, problems, true))
            (text_field("user_template", "User template", &form.user_template, problems, true))
            p { button type="submit" { "Publish template" } }
        }
    }
}

fn ab_form_markup(signed_in: &SignedIn, form: &AbTestForm, problems: &[Problem]) -> Markup {
    let rows = form.variants.len() + SPARE_ROWS;
    html! {
        (form_problems_banner(problems))
        form method="post" action="/ui/ab-tests" novalidate {
            (csrf_field(&signed_in.session))
            div.field {
                label for="ab_key" { "Key" }
                input #ab_key name="key" type="text" value=(form.key) aria-invalid=[layout::invalid(problems, "key").then_some("true")];
                (field_problems(problems, "key", "ab_key"))
            }
            fieldset {
                legend { "Variants (weights sum to 100)" }
                (field_problems(problems, "variants", "ab_variants"))
                @for i in 0..rows {
                    @let [key, version, weight] = form.variants.get(i).cloned().unwrap_or_default();
                    div.variant-row {
                        @for (name, label, value) in [("prompt_key", "Template", key), ("prompt_version", "Version (blank = latest)", version), ("weight", "Weight (%)", weight)] {
                            @let path = format!("variants[{i}].{name}");
                            @let id = format!("ab_{name}_{i}");
                            div.field {
                                label for=(id) { (label) " " (i + 1) }
                                input id=(id) name=(id) type="text" value=(value) aria-invalid=[layout::invalid(problems, &path).then_some("true")];
                                (field_problems(problems, &path, &id))
                            }
                        }
                    }
                }
            }
            p { button type="submit" { "Publish A/B test" } }
        }
    }
}

pub async fn publish_template(State(state): State<AppState>, posted: PostedForm) -> Response {
    let PostedForm { signed_in, fields, .. } = posted;
    let form = TemplateForm {
        key: field(&fields, "key").trim().to_string(),
        system_prompt: field(&fields, "system_prompt").to_string(),
        user_template: field(&fields, "user_template").to_string(),
    };
    let body = json!({"key": form.key, "system_prompt": form.system_prompt, "user_template": form.user_template});
    let template = match TemplatePublish::from_json(&body) {
        Ok(t) => t,
        Err(e) => return render_index(&state, &signed_in, Invalid::Template(&form, &e.problems)).await,
    };
    match op::publish_template(&state, &owner(&signed_in), template).await {
        Ok(_) => redirect(&template_href(&form.key)),
        Err(e) => api_error_page(e),
    }
}

pub async fn publish_ab_test(State(state): State<AppState>, posted: PostedForm) -> Response {
    let PostedForm { signed_in, fields, .. } = posted;
    let rows = indexed_rows(&fields, &["ab_prompt_key_", "ab_prompt_version_", "ab_weight_"], MAX_ROWS);
    let form = AbTestForm {
        key: field(&fields, "key").trim().to_string(),
        variants: rows.into_iter().map(|r| [r[0].clone(), r[1].clone(), r[2].clone()]).collect(),
    };
    let variants: Vec<Value> = form
        .variants
        .iter()
        .map(|[key, version, weight]| {
            let mut v = json!({"prompt_key": key, "weight": number_or_text(weight)});
            if !version.is_empty() {
                v["prompt_version"] = number_or_text(version);
            }
            v
        })
        .collect();
    let body = json!({"key": form.key, "variants": variants});
    // The API checks the named templates exist, so its own handler validates.
    match op::publish_ab_test(&state, &owner(&signed_in), body).await {
        Ok(_) => redirect(&ab_test_href(&form.key)),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            render_index(&state, &signed_in, Invalid::AbTest(&form, &problems_of(&e))).await
        }
        Err(e) => api_error_page(e),
    }
}

pub async fn template_detail(State(state): State<AppState>, signed_in: SignedIn, Path(key): Path<String>) -> Response {
    let detail = match op::template_detail(&state, &owner(&signed_in), key.clone()).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let latest: Option<&TemplateView> = detail.versions.last();
    let form = TemplateForm {
        key: detail.key.clone(),
        system_prompt: latest.map(|t| t.system_prompt.clone()).unwrap_or_default(),
        user_template: latest.map(|t| t.user_template.clone()).unwrap_or_default(),
    };
    let body = html! {
        p.crumbs { a href=(NAV) { "Templates" } " / " }
        h1 { (detail.key) }
        @for t in detail.versions.iter().rev() {
            details.version open[latest.is_some_and(|l| l.version == t.version)] {
                summary { "Version " (t.version) " · " (time(t.created_at)) }
                h4 { "System prompt" } pre { (t.system_prompt) }
                h4 { "User template" } pre { (t.user_template) }
            }
        }
        section aria-labelledby="publish-h" {
            h2 #publish-h { "Publish version " (latest.map_or(1, |l| l.version + 1)) }
            (template_form_markup(&signed_in, &form, &[], false))
        }
    };
    page(StatusCode::OK, layout(&key, Some(&signed_in.session), NAV, body))
}

pub async fn ab_test_detail(State(state): State<AppState>, signed_in: SignedIn, Path(key): Path<String>) -> Response {
    let detail = match op::ab_test_detail(&state, &owner(&signed_in), key.clone()).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let latest = detail.versions.last();
    let form = AbTestForm {
        key: detail.key.clone(),
        variants: latest
            .map(|t| {
                t.variants
                    .iter()
                    .map(|v| {
                        [
                            v.prompt_key.clone(),
                            v.prompt_version.map_or(String::new(), |n| n.to_string()),
                            v.weight.to_string(),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let body = html! {
        p.crumbs { a href=(NAV) { "Templates" } " / " }
        h1 { (detail.key) }
        @for t in detail.versions.iter().rev() {
            details.version open[latest.is_some_and(|l| l.version == t.version)] {
                summary { "Version " (t.version) " · " (time(t.created_at)) }
                p { (variants_text(t)) }
            }
        }
        section aria-labelledby="publish-h" {
            h2 #publish-h { "Publish version " (latest.map_or(1, |l| l.version + 1)) }
            (ab_form_markup(&signed_in, &form, &[]))
        }
    };
    page(StatusCode::OK, layout(&key, Some(&signed_in.session), NAV, body))
}
