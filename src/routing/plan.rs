//! A call's plan: the targets it may try, in order, and where it goes on
//! an error of a class the route has a fallback for.
//!
//! Place in the pipeline: `run` makes one [`Plan`] per call and takes its
//! steps one by one. A target is usable when its provider exists, its
//! declared capabilities serve the call and the call's estimate (prompt
//! plus output bound) fits its `context_window` (a call estimated over a
//! window never reaches that target). The usable targets are ordered by the
//! route's strategy (`strategy`); with `affinity`, the target that served
//! the call's conversation goes first while it is healthy and not
//! saturated. [`Plan::fall_back`] switches to the route's list for an error
//! class, once per call: a context-window or content-policy error replaces
//! the rest of the plan (the other targets would refuse the same request),
//! a quota error appends it (other targets have their own quota). When no
//! target fits the call's size, the context-window fallback is taken at
//! once. Must not try targets: `run` does.

use std::collections::VecDeque;
use std::sync::Arc;

use super::affinity::Pin;
use super::call::Call;
use super::strategy::{Ask, Candidate, busy, healthy, order};
use super::table::{ProviderHandle, RouteHandle, RouteTable};
use crate::config::{FallbackClass, Strategy, TargetSpec};
use crate::providers::Need;

/// One target to try.
#[derive(Clone, Copy)]
pub(super) struct Step<'a> {
    pub target: &'a TargetSpec,
    pub handle: &'a Arc<ProviderHandle>,
}

impl Step<'_> {
    /// How affinity remembers this target.
    pub(super) fn pin(&self) -> Pin {
        Pin {
            provider: Arc::clone(&self.handle.name),
            model: Arc::from(self.target.model.as_str()),
        }
    }

    fn is(&self, pin: &Pin) -> bool {
        *self.handle.name == *pin.provider && self.target.model == *pin.model
    }
}

pub(super) struct Plan<'a> {
    table: &'a RouteTable,
    route: &'a RouteHandle,
    need: Need,
    pub ask: Ask,
    steps: VecDeque<Step<'a>>,
    /// Usable targets left out because the call does not fit their window.
    too_long: usize,
    fell_back: bool,
}

impl<'a> Plan<'a> {
    pub(super) fn new<C: Call>(table: &'a RouteTable, route: &'a RouteHandle, call: &C) -> Self {
        let ask = Ask {
            pace: call.pace(),
            decay: route.spec.latency_decay,
            input_tokens: call.input_tokens(),
            output_tokens: call.output_tokens(),
        };
        let mut plan = Plan {
            table,
            route,
            need: call.need(),
            ask,
            steps: VecDeque::new(),
            too_long: 0,
            fell_back: false,
        };
        plan.steps = plan.ordered(&route.spec.targets, Some(&route.handles));
        if plan.steps.is_empty() && plan.too_long > 0 {
            plan.fall_back(FallbackClass::ContextWindow);
        }
        if let (Some(affinity), Some(key)) = (&route.affinity, call.affinity())
            && let Some(pin) = affinity.get(key)
            && let Some(pos) = plan.steps.iter().position(|s| s.is(&pin))
            && available(plan.steps[pos].handle)
            && let Some(step) = plan.steps.remove(pos)
        {
            plan.steps.push_front(step);
        }
        plan
    }

    /// `targets` that can take the call, in the route's strategy's order.
    /// Their providers are `resolved` (the route's own targets, index by
    /// index) or else looked up by name (a fallback's).
    fn ordered(
        &mut self,
        targets: &'a [TargetSpec],
        resolved: Option<&'a [Option<Arc<ProviderHandle>>]>,
    ) -> VecDeque<Step<'a>> {
        let size = self.ask.input_tokens.saturating_add(self.ask.output_tokens);
        let (table, need) = (self.table, self.need);
        let mut too_long = 0;
        let usable = targets.iter().enumerate().filter_map(|(i, t)| {
            let h = match resolved {
                Some(handles) => handles.get(i)?.as_ref()?,
                None => table.providers.get(&t.provider)?,
            };
            if !h.capabilities.serves(need) {
                return None;
            }
            if t.context_window.is_some_and(|w| size > w) {
                too_long += 1;
                return None;
            }
            Some(Candidate {
                target: t,
                handle: h,
            })
        });
        // Failover keeps the order as written: no scores, no index list.
        if self.route.spec.strategy == Strategy::Failover {
            let steps = usable
                .map(|c| Step {
                    target: c.target,
                    handle: c.handle,
                })
                .collect();
            self.too_long += too_long;
            return steps;
        }
        let cands: Vec<Candidate<'a>> = usable.collect();
        self.too_long += too_long;
        order(
            self.route.spec.strategy,
            &cands,
            &self.ask,
            &self.table.prices,
        )
        .into_iter()
        .map(|i| Step {
            target: cands[i].target,
            handle: cands[i].handle,
        })
        .collect()
    }

    /// Moves the targets of provider `provider` to the end (the order of the
    /// rest kept): a stream that broke there is continued elsewhere first.
    pub(super) fn avoid(&mut self, provider: &str) {
        let (mut keep, last): (VecDeque<_>, VecDeque<_>) = self
            .steps
            .drain(..)
            .partition(|s| &*s.handle.name != provider);
        keep.extend(last);
        self.steps = keep;
    }

    /// The next target to try.
    pub(super) fn next(&mut self) -> Option<Step<'a>> {
        self.steps.pop_front()
    }

    pub(super) fn others_left(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Some target was left out because the call is over its window.
    pub(super) fn too_long(&self) -> bool {
        self.too_long > 0
    }

    /// Goes on with the route's fallback for `class`, if it has one and
    /// none was taken yet; false otherwise.
    pub(super) fn fall_back(&mut self, class: FallbackClass) -> bool {
        if self.fell_back {
            return false;
        }
        let Some(fallback) = self.route.spec.fallbacks.get(class) else {
            return false;
        };
        self.fell_back = true;
        let steps = self.ordered(&fallback.targets, None);
        match class {
            FallbackClass::Quota => self.steps.extend(steps),
            FallbackClass::ContextWindow | FallbackClass::ContentPolicy => self.steps = steps,
        }
        true
    }
}

/// Affinity yields to the breaker and the bulkhead.
fn available(h: &ProviderHandle) -> bool {
    healthy(h) && !busy(h).saturated()
}
