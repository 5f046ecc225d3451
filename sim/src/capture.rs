//! Captures `tracing` events of kas, agentk and friends into the [`Trace`].
//!
//! turmoil enters a span `node{name=<host>}` around each host's slice of a step; the layer looks the
//! host name up in the event's span scope. The subscriber is installed as the thread's default for
//! the world's lifetime, so parallel tests (one world per thread) do not see each other's events.
//!
//! Known gap: some library events (h2's frame logs) do not resolve to a `node` span and are
//! attributed to `world`; they are still in execution order, so the trace stays deterministic.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::trace::Trace;

/// The host a span belongs to (stored in the `node` span's extensions).
struct HostName(String);

/// A layer writing events at `level` or above into the trace.
pub struct CaptureLayer {
    trace: Trace,
    level: Level,
}

impl CaptureLayer {
    pub fn new(trace: Trace, level: Level) -> Self {
        Self { trace, level }
    }
}

struct NameVisitor(Option<String>);

impl Visit for NameVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

/// `message k=v k=v`, fields in declaration order.
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "node" {
            return;
        }
        let mut v = NameVisitor(None);
        attrs.record(&mut v);
        if let (Some(name), Some(span)) = (v.0, ctx.span(id)) {
            span.extensions_mut().insert(HostName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > self.level || meta.target().starts_with("turmoil") {
            return;
        }
        let host = ctx
            .event_scope(event)
            .and_then(|scope| scope.from_root().find_map(|s| s.extensions().get::<HostName>().map(|h| h.0.clone())))
            .unwrap_or_else(|| "world".to_owned());
        let mut v = LineVisitor::default();
        event.record(&mut v);
        self.trace.record(&host, format_args!("{} {}: {}{}", meta.level(), meta.target(), v.message, v.fields));
    }
}
