with

source as (

    select * from {{ source('silver', 'identity_map') }}

),

renamed as (

    select
        -- ids
        cast(anonymous_id as varchar) as anonymous_id,
        cast(user_id as varchar) as user_id,
        cast(link_event_id as varchar) as link_event_id,

        -- what linked them
        cast(link_event_name as varchar) as link_event_name,

        -- time (UTC)
        cast(linked_at as timestamptz) as linked_at

    from source

)

select * from renamed
