-- Registered experiments: one row per experiment, holdout units as a list. The seeded
-- registry plus the definitions uploaded to the landing zone; an uploaded definition
-- replaces a seeded one with the same id (the upload is the newer word).
with uploaded as (
    select
        experiment_id,
        experiment_type,
        platform,
        channel,
        cast(start_date as date) as start_date,
        cast(end_date as date) as end_date,
        treatment,
        holdout_units
    from {{ source('raw', 'experiment_definitions') }}
),

seeded as (
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
    where experiment_id not in (select experiment_id from uploaded)
)

select * from seeded
union all
select * from uploaded
