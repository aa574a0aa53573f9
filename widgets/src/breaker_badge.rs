//! A circuit breaker's state as a coloured badge: "● closed", "◐ half-open", "✖ open", with a
//! lock mark when a person forced it.

use crate::theme::Theme;
use ratatui::text::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerLight {
    Closed,
    HalfOpen,
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerBadge {
    pub light: BreakerLight,
    /// Held in its state by a manual override.
    pub forced: bool,
}

impl BreakerBadge {
    pub fn label(self) -> &'static str {
        match (self.light, self.forced) {
            (BreakerLight::Closed, false) => "● closed",
            (BreakerLight::Closed, true) => "● closed ⚿",
            (BreakerLight::HalfOpen, _) => "◐ half-open",
            (BreakerLight::Open, false) => "✖ open",
            (BreakerLight::Open, true) => "✖ open ⚿",
        }
    }

    pub fn span(self, theme: &Theme) -> Span<'static> {
        let style = match self.light {
            BreakerLight::Closed => theme.passing,
            BreakerLight::HalfOpen => theme.warning,
            BreakerLight::Open => theme.critical,
        };
        Span::styled(self.label(), style)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_states_carry_the_lock_mark() {
        let b = |light, forced| BreakerBadge { light, forced }.label();
        assert_eq!(b(BreakerLight::Open, true), "✖ open ⚿");
        assert_eq!(b(BreakerLight::Open, false), "✖ open");
        assert_eq!(b(BreakerLight::HalfOpen, false), "◐ half-open");
        let t = Theme::default();
        assert_eq!(
            BreakerBadge {
                light: BreakerLight::Open,
                forced: false
            }
            .span(&t)
            .style,
            t.critical
        );
    }
}
