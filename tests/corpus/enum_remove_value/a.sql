create type mood as enum ('sad', 'ok', 'unused');
create table person (id serial primary key, m mood);
