with

source as (

    select * from {{ source('observability', 'data_trust_daily') }}

),

renamed as (

    select
        cast(date_day as date) as date_day,
        cast(is_trusted as boolean) as is_trusted,
        cast(failed_gates as bigint) as failed_gates,
        cast(untrusted_reasons as varchar) as untrusted_reasons,
        cast(computed_at as timestamptz) as computed_at

    from source

)

select * from renamed
