"""Schedules and sensors: when things run, and what happens when they finish."""

import dagster as dg

from cfap_orchestration.defs.automation.job_status import job_status_sensor
from cfap_orchestration.defs.automation.schedules import (
    daily_refresh_job,
    daily_refresh_schedule,
    mmm_weekly_refit,
)
from cfap_orchestration.defs.automation.sensors import (
    landing_zone_sensor,
    new_geo_experiment_sensor,
)


def automation_definitions() -> dg.Definitions:
    job = daily_refresh_job()
    return dg.Definitions(
        jobs=[job],
        schedules=[daily_refresh_schedule(job), mmm_weekly_refit()],
        sensors=[landing_zone_sensor, new_geo_experiment_sensor, job_status_sensor],
    )
