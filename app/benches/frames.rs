//! Frame time per tab at 200×60: a real embedded cluster under traffic, the span store filled to
//! 100 000 spans, then each tab (and a trace's waterfall, and help) drawn into ratatui's
//! TestBackend as the dashboard draws it (the frame built, diffed against the last one and
//! written to the backend's buffer). Target: ≤ 2 ms per frame.
//!
//! Run: `cargo bench --bench frames`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::{Config, DEFAULTS_TOML};
use devcluster::control::Command;
use devcluster::telemetry::{LogFilter, SpanId, SpanRecord, TraceFilter, TraceId};
use lgo_dash::dashboard::app::{App, Header, Reply};
use lgo_dash::dashboard::render::draw;
use lgo_dash::dashboard::tabs::Tab;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::Duration;

/// Spans of made-up traces, seven to a trace, to fill the store to its size.
fn filler(i: u64) -> SpanRecord {
    SpanRecord {
        trace_id: TraceId(u128::from(i / 7 + 1) << 64),
        span_id: SpanId(i + 1),
        parent_id: (!i.is_multiple_of(7)).then_some(SpanId(i)),
        service: "user-service".into(),
        instance: "user-service-2".into(),
        name: "GET /users/{id}".into(),
        start_unix_ns: 1_700_000_000_000_000_000 + i * 1000,
        duration_ns: 850_000,
        error: false,
        attributes: vec![("http.status_code".into(), "200".into())],
        events: vec![],
    }
}

fn frames(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = Config::from_layers(&[("defaults", DEFAULTS_TOML)]).unwrap();
    let cluster = rt
        .block_on(Cluster::start(ClusterOptions::new(cfg).auto_ports(true)))
        .unwrap();
    let handle = cluster.handle();
    let store = cluster.telemetry().spans.clone();
    store.extend((0..100_000).map(filler));
    rt.block_on(async {
        handle.send(Command::Traffic { rps: 500 }).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        // Quiet while frames are timed: the machine's CPU is the frames'.
        handle.send(Command::Traffic { rps: 0 }).await.unwrap();
    });
    eprintln!("spans stored: {}", store.len());
    let traces = rt
        .block_on(handle.traces(&TraceFilter {
            limit: Some(200),
            ..Default::default()
        }))
        .unwrap();
    let biggest = traces.iter().max_by_key(|t| t.span_count).unwrap().trace_id;
    let spans = rt.block_on(handle.trace(biggest)).unwrap();
    let logs = rt
        .block_on(handle.logs(&LogFilter {
            limit: Some(1000),
            level: Some(devcluster::telemetry::Level::Debug),
            ..Default::default()
        }))
        .unwrap();

    let mut app = App::new(
        Header {
            mode: "embedded cluster".into(),
            env: "development".into(),
        },
        handle.snapshot(),
    );
    app.on_snapshot(handle.snapshot());
    app.on_reply(Reply::Traces(Ok(traces)));
    app.on_reply(Reply::Logs(Ok(logs)));
    let app = std::cell::RefCell::new(app);
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let mut group = c.benchmark_group("frame 200x60");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(2));
    for tab in Tab::ALL {
        app.borrow_mut().tab = tab;
        group.bench_function(tab.title(), |b| {
            let app = app.borrow();
            b.iter(|| {
                terminal.draw(|f| draw(f, &app)).unwrap();
            });
        });
    }
    {
        let mut a = app.borrow_mut();
        a.tab = Tab::Traces;
        a.traces.loading = Some(biggest);
        a.on_reply(Reply::Trace(biggest, Ok(spans)));
    }
    group.bench_function("Traces (a waterfall)", |b| {
        let app = app.borrow();
        b.iter(|| {
            terminal.draw(|f| draw(f, &app)).unwrap();
        });
    });
    app.borrow_mut().help = true;
    group.bench_function("help", |b| {
        let app = app.borrow();
        b.iter(|| {
            terminal.draw(|f| draw(f, &app)).unwrap();
        });
    });
    group.finish();
    rt.block_on(cluster.shutdown());
}

criterion_group!(benches, frames);
criterion_main!(benches);
