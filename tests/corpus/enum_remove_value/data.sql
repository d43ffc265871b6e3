insert into person (m) values ('sad'), ('ok');
