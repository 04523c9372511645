-- Meta ads per campaign and day: typed, with conversions from the configured action types.
{{ cfap.stg_meta_insights('meta_ads_insights', with_region=false) }}
