export class Inbox {}
