-- Every calendar day the project models, from the first ingest partition on.
{{ cfap.date_spine("'" ~ var('calendar_start') ~ "'", "'" ~ var('calendar_end') ~ "'") }}
