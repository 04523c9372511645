-- Meta ads per campaign, region and day: the geo grain of geo experiments.
{{ cfap.stg_meta_insights('meta_ads_insights_region', with_region=true) }}
