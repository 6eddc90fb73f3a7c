"""The resident's phone page: enrolment from a one-time link, then the offline live code."""
