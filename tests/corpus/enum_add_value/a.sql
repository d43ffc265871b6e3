create type mood as enum ('sad', 'ok');
create table person (id serial primary key, m mood not null default 'ok');
create view moods as select id, m from person;
comment on view moods is 'moods of people';
