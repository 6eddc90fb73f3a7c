"""The gate agent: reads passes, decides offline, drives the relay, journals every decision."""
