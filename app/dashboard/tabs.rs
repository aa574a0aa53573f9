//! The seven tabs, their titles, and what the ones not built yet will hold.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Services,
    Balancer,
    Breakers,
    Metrics,
    Traces,
    Config,
    Logs,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Services,
        Tab::Balancer,
        Tab::Breakers,
        Tab::Metrics,
        Tab::Traces,
        Tab::Config,
        Tab::Logs,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Services => "Services",
            Tab::Balancer => "Balancer",
            Tab::Breakers => "Breakers",
            Tab::Metrics => "Metrics",
            Tab::Traces => "Traces",
            Tab::Config => "Config",
            Tab::Logs => "Logs",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    pub fn from_index(i: usize) -> Tab {
        Tab::ALL[i % Tab::ALL.len()]
    }
}
