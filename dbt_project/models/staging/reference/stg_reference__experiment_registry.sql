-- Registered experiments: one row per experiment, holdout units as a list.
select
    experiment_id,
    experiment_type,
    platform,
    channel,
    cast(start_date as date) as start_date,
    cast(end_date as date) as end_date,
    treatment,
    holdout_units
from {{ ref('experiment_registry') }}
