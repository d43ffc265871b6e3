create type mood as enum ('bad', 'sad', 'meh', 'ok', 'it''s', 'great');
create table person (id serial primary key, m mood not null default 'meh');
create view moods as select id, m from person;
comment on view moods is 'moods of people';
