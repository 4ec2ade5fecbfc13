"""Local servers that speak each notification provider's real contract (FCM, APNs, Web Push,
SMTP, Twilio, Pusher) and check what the provider checks: its authentication, its headers,
its payload rules, and the error bodies it answers with."""
