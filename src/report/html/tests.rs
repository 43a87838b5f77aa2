use super::*;
use crate::report::Status;

fn started(hosts: &[String]) -> Event {
    Event::RunStarted {
        env: "prod".into(),
        mode: Mode::Apply,
        playbook: "playbooks/deploy.toml".into(),
        hosts: hosts.to_vec(),
        user: "alice@laptop".into(),
        started_at: "2026-12-02T00:00:00Z".into(),
    }
}

fn step(host: &str, index: usize, name: &str, status: Status, at_ms: u64) -> [Event; 2] {
    let ms = 100 + (index as u64 * 37) % 900;
    [
        Event::StepStarted {
            host: host.into(),
            index,
            step: name.into(),
            kind: "command".into(),
            at_ms,
        },
        Event::StepFinished {
            host: host.into(),
            index,
            step: name.into(),
            kind: "command".into(),
            status,
            message: format!("ran {name}"),
            diff: (status == Status::Changed)
                .then(|| "--- a/etc/app.conf\n+++ b/etc/app.conf\n-port=1\n+port=2\n".into()),
            output: (status == Status::Failed).then(|| "line\n".repeat(80)),
            ms,
            at_ms: at_ms + ms,
        },
    ]
}

/// `hosts` × `steps`: the last step of every 7th host fails, every 3rd step changes.
fn synthetic_run(hosts: usize, steps: usize) -> Vec<Event> {
    let names: Vec<String> = (1..=hosts).map(|i| format!("h{i}")).collect();
    let mut events = vec![started(&names)];
    let mut totals = Counts::default();
    for (h, host) in names.iter().enumerate() {
        events.push(Event::HostConnected {
            host: host.clone(),
            ms: 30 + h as u64,
            at_ms: 30 + h as u64,
        });
        let mut at = 40 + h as u64;
        let mut counts = Counts::default();
        for i in 0..steps {
            let status = match i {
                _ if i + 1 == steps && h % 7 == 0 => Status::Failed,
                _ if i % 3 == 0 => Status::Changed,
                _ if i % 11 == 5 => Status::Skipped,
                _ => Status::Ok,
            };
            let pair = step(host, i, &format!("deploy step number {i}"), status, at);
            if let Event::StepFinished { at_ms, .. } = &pair[1] {
                at = *at_ms;
            }
            counts.add(status);
            totals.add(status);
            events.extend(pair);
        }
        events.push(Event::HostFinished {
            host: host.clone(),
            counts,
            unreachable: false,
            stopped_at: None,
            round_trips: 2,
            ms: at,
            release: Some("3f2a9c1".into()),
        });
    }
    events.push(Event::RunFinished {
        mode: Mode::Apply,
        totals,
        failed_hosts: vec![],
        unreachable_hosts: vec![],
        exit_code: 3,
        ms: 20_000,
    });
    events
}

#[test]
fn a_hundred_hosts_by_thirty_steps_stay_under_one_megabyte() {
    let page = render(&synthetic_run(100, 30));
    assert!(page.len() < 1_000_000, "{} bytes", page.len());
    assert_eq!(page.matches("class=\"row").count(), 100);
    assert_eq!(page.matches("data-status=").count(), 3000);
    assert_eq!(page.matches("data-status=\"failed\"").count(), 15);
}

#[test]
fn hosts_are_in_natural_order() {
    let page = render(&synthetic_run(12, 1));
    // A row's opening tag is the only place `data-host` is followed by the name's span.
    let at = |h: &str| page.find(&format!("data-host=\"{h}\"><span"));
    let (h2, h10) = (at("h2").unwrap(), at("h10").unwrap());
    assert!(h2 < h10, "h2 at {h2}, h10 at {h10}");
}

#[test]
fn html_in_step_names_hosts_and_output_is_text() {
    let mut events = vec![started(&["<b>h</b>".into()])];
    events.extend(step(
        "<b>h</b>",
        0,
        "<script>alert(1)</script>",
        Status::Failed,
        0,
    ));
    if let Some(Event::StepFinished {
        output, message, ..
    }) = events.last_mut()
    {
        *output = Some("</pre><script>alert(2)</script>\"'".into());
        *message = "<img src=x onerror=alert(3)>".into();
    }
    let page = render(&events);
    for raw in ["<script>alert", "<img", "<b>h</b>", "</pre><script>"] {
        assert!(!page.contains(raw), "{raw} in the page");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("data-step=\"&lt;script&gt;alert(1)&lt;/script&gt;\""));
    assert!(!page.contains("<script"), "the page has no script at all");
}

#[test]
fn the_page_is_self_contained() {
    let page = render(&synthetic_run(3, 3));
    for remote in ["http://", "https://", "src=", "<link", "@import", "url("] {
        assert!(!page.contains(remote), "{remote} in the page");
    }
}

#[test]
fn failures_keep_the_tail_of_their_output_and_rows_are_marked_for_the_filter() {
    let page = render(&synthetic_run(8, 3));
    assert!(page.contains("… 40 earlier lines"));
    assert_eq!(page.matches("<div class=\"failure\"").count(), 2);
    assert!(page.contains("class=\"row has-failed has-changed\" data-host=\"h1\""));
    assert!(page.contains("class=\"row has-changed\" data-host=\"h2\""));
    assert!(page.contains("<span class=\"add\">+port=2</span>"));
}

#[test]
fn who_ran_it_where_and_when_is_in_the_header() {
    let page = render(&synthetic_run(1, 1));
    for s in [
        "<dt>release</dt><dd>3f2a9c1</dd>",
        "2 rt",
        "alice@laptop",
        "2026-12-02T00:00:00Z",
        "playbooks/deploy.toml",
        "prod",
    ] {
        assert!(page.contains(s), "{s}");
    }
}

#[test]
fn a_run_cut_short_still_renders() {
    let mut events = synthetic_run(2, 2);
    events.truncate(4);
    let page = render(&events);
    assert!(page.contains("did not finish"));
    assert!(page.ends_with("</html>\n"));
}
