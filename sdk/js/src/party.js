export class PartyClient {} export class PartyScheduler {}
