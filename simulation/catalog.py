"""Static vocabulary of the simulated product: pages, features, channels, devices, emails.

Everything here is ASCII on purpose: a line cut by a ``malformed_json`` fault must never split a
multi-byte character, so landed files always decode as UTF-8.
"""

from __future__ import annotations

__all__ = [
    "EMITTED_EVENTS",
    "ONBOARDING_STEPS",
    "FEATURES",
    "FEATURE_WEIGHTS",
    "MARKETING_PAGES",
    "APP_PAGES",
    "PAGE_TITLES",
    "CHANNELS",
    "SIGNUP_METHODS",
    "SIGNUP_METHOD_WEIGHTS",
    "USER_AGENTS",
    "LOCALES",
    "LOCALE_WEIGHTS",
    "FIRST_NAMES",
    "EMAIL_DOMAINS",
    "EMAIL_LINKS",
    "PAYMENT_FAILURE_REASONS",
    "CANCEL_REASONS",
    "UNPLANNED_EVENTS",
    "UNEXPECTED_PROPERTIES",
    "BAD_TIMESTAMPS",
]

# Every event name the journey model emits; each must exist in the tracking plan.
EMITTED_EVENTS: tuple[str, ...] = (
    "page_viewed",
    "user_signed_up",
    "user_logged_in",
    "onboarding_step_completed",
    "feature_used",
    "trial_started",
    "subscription_started",
    "payment_succeeded",
    "payment_failed",
    "subscription_cancelled",
    "email_opened",
    "email_clicked",
    "consent_updated",
)

# In checklist order: step_index is the 1-based position.
ONBOARDING_STEPS: tuple[str, ...] = ("profile", "invite_team", "connect_data", "first_project", "tour")

FEATURES: tuple[str, ...] = ("dashboards", "reports", "alerts", "api", "integrations", "export")
FEATURE_WEIGHTS: tuple[float, ...] = (0.34, 0.24, 0.14, 0.08, 0.12, 0.08)

MARKETING_PAGES: tuple[str, ...] = (
    "/", "/pricing", "/features", "/customers", "/docs/getting-started",
    "/blog/how-to-measure-retention", "/blog/activation-metrics", "/signup",
)
APP_PAGES: tuple[str, ...] = (
    "/app", "/app/dashboards", "/app/reports", "/app/alerts", "/app/integrations",
    "/app/settings", "/app/billing", "/app/team",
)
PAGE_TITLES: dict[str, str] = {
    "/": "Growthlake - product analytics that acts",
    "/pricing": "Pricing",
    "/features": "Features",
    "/customers": "Customers",
    "/docs/getting-started": "Getting started",
    "/blog/how-to-measure-retention": "How to measure retention",
    "/blog/activation-metrics": "Activation metrics that matter",
    "/signup": "Create your account",
    "/app": "Home",
    "/app/dashboards": "Dashboards",
    "/app/reports": "Reports",
    "/app/alerts": "Alerts",
    "/app/integrations": "Integrations",
    "/app/settings": "Settings",
    "/app/billing": "Billing",
    "/app/team": "Team",
}

# channel -> (share of arrivals, signup multiplier, referrers, utm_source/medium choices, campaigns)
CHANNELS: dict[str, tuple[float, float, tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "organic_search": (0.32, 1.00, ("https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"),
                       (), ()),
    "paid_search": (0.18, 0.85, ("https://www.google.com/",), (("google", "cpc"), ("bing", "cpc")),
                    ("brand", "competitor", "analytics_tools")),
    "social": (0.14, 0.70, ("https://t.co/", "https://www.linkedin.com/", "https://www.reddit.com/"),
               (("twitter", "social"), ("linkedin", "social"), ("reddit", "social")), ("launch_week", "case_study")),
    "referral": (0.10, 1.35, ("https://news.ycombinator.com/", "https://www.producthunt.com/",
                              "https://blog.example.org/best-analytics-tools"), (), ()),
    "direct": (0.18, 1.15, (), (), ()),
    "email": (0.08, 1.25, (), (("newsletter", "email"), ("partner_digest", "email")), ("monthly_digest", "webinar")),
}

SIGNUP_METHODS: tuple[str, ...] = ("email", "google", "github")
SIGNUP_METHOD_WEIGHTS: tuple[float, ...] = (0.55, 0.32, 0.13)

# (user agent, device type); device 0 of a user is drawn from all, extra devices prefer mobile.
USER_AGENTS: tuple[tuple[str, str], ...] = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36", "desktop"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36", "desktop"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", "desktop"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "desktop"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Safari/605.1.15", "desktop"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87", "desktop"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", "mobile"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", "mobile"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.6478.71 Mobile Safari/537.36", "mobile"),
    ("Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/125.0.6422.165 Mobile Safari/537.36", "mobile"),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", "tablet"),
)

LOCALES: tuple[str, ...] = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR", "nl-NL", "ja-JP", "en-IN")
LOCALE_WEIGHTS: tuple[float, ...] = (0.42, 0.12, 0.10, 0.08, 0.06, 0.07, 0.04, 0.05, 0.06)

FIRST_NAMES: tuple[str, ...] = (
    "ada", "grace", "alan", "linus", "margaret", "dennis", "barbara", "ken", "frances", "edsger",
    "radia", "guido", "hedy", "tim", "katherine", "john", "sophie", "yukihiro", "anita", "bjarne",
)
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")

EMAIL_LINKS: dict[str, tuple[str, ...]] = {
    "welcome": ("https://app.growthlake.example/app", "https://growthlake.example/docs/getting-started"),
    "onboarding_nudge": ("https://app.growthlake.example/app/integrations", "https://app.growthlake.example/app"),
    "trial_ending": ("https://app.growthlake.example/app/billing", "https://growthlake.example/pricing"),
    "newsletter": ("https://growthlake.example/blog/activation-metrics", "https://growthlake.example/customers"),
    "winback": ("https://app.growthlake.example/app", "https://growthlake.example/features"),
}

PAYMENT_FAILURE_REASONS: tuple[str, ...] = ("card_declined", "insufficient_funds", "expired_card")
CANCEL_REASONS: tuple[str, ...] = ("too_expensive", "missing_features", "switched_tool", "no_longer_needed", "other")

# Fault vocabulary.
UNPLANNED_EVENTS: tuple[str, ...] = ("button_clicked", "experiment_viewed", "tooltip_shown", "search_performed")
UNEXPECTED_PROPERTIES: tuple[tuple[str, object], ...] = (
    ("contact", "bob@example.com"),
    ("debug", True),
    ("build_sha", "3f9c2e1"),
    ("experiment", "exp_checkout_v2"),
    ("user_email", "carol.d@example.org"),
    ("retry_count", 2),
)
BAD_TIMESTAMPS: tuple[str, ...] = ("yesterday", "2026-13-45T99:00:00Z", "", "02/11/2026 10:15:03", "NaN",
                                   "2026-11-02 10:15")
